package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// aclOperations are the operations an ACL may grant, in Kafka REST's
// spelling.
var aclOperations = []string{"ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
	"DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}

// ACLFlags are the flags of kafka acl create, list and delete, as typed,
// as confluent's acl commands take them.
type ACLFlags struct {
	Allow, Deny bool
	// ServiceAccount (sa-…) and Principal (User:…) name the principal;
	// one of them.
	ServiceAccount, Principal string
	// Operations are the operations, in any case, with - or _.
	Operations []string
	// Topic, ConsumerGroup, TransactionalID and ClusterScope name the
	// resource; one of them.
	Topic, ConsumerGroup, TransactionalID string
	ClusterScope                          bool
	// Prefix makes the resource name a prefix.
	Prefix bool
}

// ACL is one ACL in Kafka REST v3's spelling.
type ACL struct {
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// query is the ACL as the filter of a list or a deletion.
func (a ACL) query() url.Values {
	return url.Values{"resource_type": {a.ResourceType}, "resource_name": {a.ResourceName}, "pattern_type": {a.PatternType},
		"principal": {a.Principal}, "operation": {a.Operation}, "permission": {a.Permission}}
}

// ParseACLs turns the flags of kafka acl create and delete into the ACLs
// they name, one per operation: a principal (a service account or a
// User: principal), --allow or --deny, one resource, and at least one
// operation, are required.
func ParseACLs(f ACLFlags) ([]ACL, error) {
	principal, err := aclPrincipal(f)
	if err != nil {
		return nil, err
	}
	if principal == "" {
		return nil, errors.New("a principal is required: pass --service-account sa-… or --principal User:…")
	}
	var permission string
	switch {
	case f.Allow && f.Deny:
		return nil, errors.New("--allow and --deny exclude each other")
	case f.Allow:
		permission = "ALLOW"
	case f.Deny:
		permission = "DENY"
	default:
		return nil, errors.New("pass --allow or --deny")
	}
	typ, name, pattern, err := aclResource(f)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, errors.New("a resource is required: pass one of --topic, --consumer-group, --transactional-id or --cluster-scope")
	}
	var out []ACL
	for _, op := range f.Operations {
		op = strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(op)), "-", "_")
		if !slices.Contains(aclOperations, op) {
			return nil, fmt.Errorf("--operations: %q is not an operation; want some of %s", oneLine(op, 50),
				strings.ToLower(strings.ReplaceAll(strings.Join(aclOperations, ", "), "_", "-")))
		}
		a := ACL{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal, Host: "*", Operation: op, Permission: permission}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--operations is required: a comma-separated list, like read,describe")
	}
	return out, nil
}

// ParseACLFilter turns the flags of kafka acl list into Kafka REST's
// query: every flag narrows it, none lists every ACL.
func ParseACLFilter(f ACLFlags) (url.Values, error) {
	principal, err := aclPrincipal(f)
	if err != nil {
		return nil, err
	}
	typ, name, pattern, err := aclResource(f)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if principal != "" {
		q.Set("principal", principal)
	}
	if typ != "" {
		q.Set("resource_type", typ)
		q.Set("resource_name", name)
		if f.Prefix {
			q.Set("pattern_type", pattern)
		}
	}
	return q, nil
}

// aclPrincipal is the principal the flags name, "" for none.
func aclPrincipal(f ACLFlags) (string, error) {
	switch {
	case f.ServiceAccount != "" && f.Principal != "":
		return "", errors.New("--service-account and --principal exclude each other")
	case f.ServiceAccount != "":
		if !strings.HasPrefix(f.ServiceAccount, "sa-") || len(f.ServiceAccount) == len("sa-") {
			return "", fmt.Errorf("--service-account %q: want a service account ID, sa-…", oneLine(f.ServiceAccount, 50))
		}
		return "User:" + f.ServiceAccount, nil
	case f.Principal != "":
		if rest, ok := strings.CutPrefix(f.Principal, "User:"); !ok || rest == "" {
			return "", fmt.Errorf("--principal %q: want User:sa-… or User:u-…", oneLine(f.Principal, 50))
		}
		return f.Principal, nil
	}
	return "", nil
}

// aclResource is the resource the flags name, "" for none.
func aclResource(f ACLFlags) (typ, name, pattern string, err error) {
	named := 0
	for _, set := range []bool{f.Topic != "", f.ConsumerGroup != "", f.TransactionalID != "", f.ClusterScope} {
		if set {
			named++
		}
	}
	pattern = "LITERAL"
	if f.Prefix {
		pattern = "PREFIXED"
	}
	switch {
	case named > 1:
		return "", "", "", errors.New("--topic, --consumer-group, --transactional-id and --cluster-scope exclude each other")
	case f.Topic != "":
		return "TOPIC", f.Topic, pattern, nil
	case f.ConsumerGroup != "":
		return "GROUP", f.ConsumerGroup, pattern, nil
	case f.TransactionalID != "":
		return "TRANSACTIONAL_ID", f.TransactionalID, pattern, nil
	case f.ClusterScope && f.Prefix:
		return "", "", "", errors.New("--prefix does not apply to --cluster-scope")
	case f.ClusterScope:
		// The only name Kafka gives the cluster resource.
		return "CLUSTER", "kafka-cluster", "LITERAL", nil
	case f.Prefix:
		return "", "", "", errors.New("--prefix needs a --topic, --consumer-group or --transactional-id to apply to")
	}
	return "", "", "", nil
}

// aclOut is an ACL as confluent's kafka acl commands print it with -o
// json.
type aclOut struct {
	Principal    string `json:"principal"`
	Permission   string `json:"permission"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
}

var aclView = view[ACL]{
	header: []string{"Principal", "Permission", "Operation", "Resource Type", "Resource Name", "Pattern Type"},
	row: func(_ *session, a ACL) []string {
		return []string{a.Principal, a.Permission, a.Operation, a.ResourceType, a.ResourceName, a.PatternType}
	},
	flat: func(_ *session, a ACL) any {
		return aclOut{Principal: a.Principal, Permission: a.Permission, Operation: a.Operation, ResourceType: a.ResourceType,
			ResourceName: a.ResourceName, PatternType: a.PatternType}
	},
}

// aclHelp is the part of the ACL commands' help that says what an ACL is
// here.
const aclHelp = `
An ACL names the owner of keys, a service account (--service-account
sa-…) or a user (--principal User:u-…), and every key of that owner acts
as it. A key whose owner has no role on the cluster may do only what the
ACLs grant; only a key whose owner administers the cluster
(OrganizationAdmin, EnvironmentAdmin or CloudClusterAdmin) manages ACLs.
The resource is one of --topic, --consumer-group, --transactional-id
(with --prefix, every name that starts so) or --cluster-scope.
`

// addACLFlags declares the flags of f on cmd; operations and permission
// only for create and delete.
func addACLFlags(cmd *cobra.Command, g *globals, f *ACLFlags, entries bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.ServiceAccount, "service-account", "", "service account ID (sa-…) the ACL names")
	fs.StringVar(&f.Principal, "principal", "", "principal the ACL names: User:sa-… or User:u-…")
	fs.StringVar(&f.Topic, "topic", "", "the topic (\"*\" for all)")
	fs.StringVar(&f.ConsumerGroup, "consumer-group", "", "the consumer group")
	fs.StringVar(&f.TransactionalID, "transactional-id", "", "the transactional id")
	fs.BoolVar(&f.ClusterScope, "cluster-scope", false, "the cluster itself")
	fs.BoolVar(&f.Prefix, "prefix", false, "the resource name is a prefix")
	cmd.MarkFlagsMutuallyExclusive("service-account", "principal")
	mustComplete(cmd, "service-account", completeFrom(g, "/iam/v2/service-accounts", nil,
		func(sa api.ServiceAccount) (string, string) { return sa.ID, sa.DisplayName }))
	if !entries {
		return
	}
	fs.BoolVar(&f.Allow, "allow", false, "the ACL allows the operations")
	fs.BoolVar(&f.Deny, "deny", false, "the ACL denies the operations")
	fs.StringSliceVar(&f.Operations, "operations", nil, "comma-separated operations: "+
		strings.ToLower(strings.ReplaceAll(strings.Join(aclOperations, ", "), "_", "-")))
	cmd.MarkFlagsMutuallyExclusive("allow", "deny")
	ops := make([]string, len(aclOperations))
	for i, op := range aclOperations {
		ops[i] = strings.ToLower(strings.ReplaceAll(op, "_", "-"))
	}
	mustComplete(cmd, "operations", staticValues(ops...))
}

func newACLCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "acl",
		Short: "Manage the ACLs of a Kafka cluster",
		Long:  "Manage the ACLs of a Kafka cluster: create, list and delete.\n" + aclHelp + restHelp,
	})
	cmd.AddCommand(newACLCreateCmd(g, clusters), newACLListCmd(g, clusters), newACLDeleteCmd(g, clusters))
	return cmd
}

func newACLCreateCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var rf restFlags
	var f ACLFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create ACLs",
		Long:  "Create an ACL for each of --operations.\n" + aclHelp + restHelp,
		Example: `  mothership kafka acl create --allow --service-account sa-abc123 --operations read,describe --topic orders
  mothership kafka acl create --allow --service-account sa-abc123 --operations read --consumer-group billing-`,
		Args: cobra.NoArgs,
		RunE: g.runREST(&rf, func(cmd *cobra.Command, s *session, rc *restClient, _ []string) error {
			acls, err := ParseACLs(f)
			if err != nil {
				return err
			}
			if err := rc.Do(cmd.Context(), http.MethodPost, rc.path+"/acls:batch", struct {
				Data []ACL `json:"data"`
			}{acls}, nil); err != nil {
				return err
			}
			return aclView.printList(s, acls)
		}),
	}
	rf.add(cmd, clusters)
	addACLFlags(cmd, g, &f, true)
	return cmd
}

func newACLListCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var rf restFlags
	var f ACLFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List ACLs",
		Long:  "List the cluster's ACLs; the principal and resource flags narrow the list.\n" + aclHelp + restHelp,
		Args:  cobra.NoArgs,
		RunE: g.runREST(&rf, func(cmd *cobra.Command, s *session, rc *restClient, _ []string) error {
			q, err := ParseACLFilter(f)
			if err != nil {
				return err
			}
			acls, err := rc.acls(cmd, q)
			if err != nil {
				return err
			}
			return aclView.printList(s, acls)
		}),
	}
	rf.add(cmd, clusters)
	addACLFlags(cmd, g, &f, false)
	return cmd
}

// acls lists the ACLs query selects.
func (rc *restClient) acls(cmd *cobra.Command, q url.Values) ([]ACL, error) {
	target := rc.path + "/acls"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var list restList[ACL]
	err := rc.Do(cmd.Context(), http.MethodGet, target, nil, &list)
	return list.Data, err
}

func newACLDeleteCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var rf restFlags
	var f ACLFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete ACLs",
		Long: `Delete the ACLs the flags name, one for each of --operations. Unless
--force is given it lists them and asks for confirmation first.
` + aclHelp + restHelp,
		Example: "  mothership kafka acl delete --allow --service-account sa-abc123 --operations read,describe --topic orders",
		Args:    cobra.NoArgs,
		RunE: g.runREST(&rf, func(cmd *cobra.Command, s *session, rc *restClient, _ []string) error {
			acls, err := ParseACLs(f)
			if err != nil {
				return err
			}
			if !force {
				var matching []ACL
				for _, a := range acls {
					found, err := rc.acls(cmd, a.query())
					if err != nil {
						return err
					}
					matching = append(matching, found...)
				}
				if len(matching) == 0 {
					return errors.New("no ACL matches these flags: nothing deleted")
				}
				if err := printTable(s.errOut, aclView.header, rows(s, aclView, matching)); err != nil {
					return err
				}
				ok, err := confirm(s, fmt.Sprintf("Are you sure you want to delete the %d ACLs above?", len(matching)))
				if err != nil || !ok {
					return err
				}
			}
			var deleted []ACL
			for _, a := range acls {
				var out restList[ACL]
				if err := rc.Do(cmd.Context(), http.MethodDelete, rc.path+"/acls?"+a.query().Encode(), nil, &out); err != nil {
					return errors.Join(aclView.printList(s, deleted), err)
				}
				deleted = append(deleted, out.Data...)
			}
			if len(deleted) == 0 {
				return errors.New("no ACL matches these flags: nothing deleted")
			}
			return aclView.printList(s, deleted)
		}),
	}
	rf.add(cmd, clusters)
	addACLFlags(cmd, g, &f, true)
	cmd.Flags().BoolVar(&force, "force", false, "delete without asking for confirmation")
	return cmd
}
