package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramMechanism is the one SASL mechanism of every principal.
const scramMechanism = "SCRAM-SHA-512"

// scramIterations is the PBKDF2 cost of a provisioned credential: Kafka's
// default (it accepts 4096 to 16384). The embedded broker announces 4096 to
// every client whatever a credential was salted with, so it is the only
// count that works there.
const scramIterations = 4096

// SASLOpts returns the client options that authenticate as user with
// SCRAM-SHA-512. Append them to the options that reach the cluster.
func SASLOpts(user, password string) []kgo.Opt {
	return []kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism())}
}

// Grants are what one principal may do on the event cluster: the least a
// service needs, derived from its declaration (see host.Service.Grants).
// Every name is literal: a grant never reaches a topic or group it does not
// name.
type Grants struct {
	// Produce are the topics the principal writes, and may create: the
	// topics of the kinds a service owns. Producing also grants the
	// cluster's IdempotentWrite, which the idempotent producer needs.
	Produce []string
	// Consume are the topics it reads: the ones a service reacts to.
	Consume []string
	// Groups are the consumer groups it joins and commits offsets in.
	Groups []string
}

// ACL is one allow rule of a principal, on a literal resource from any
// host.
type ACL struct {
	Resource  kmsg.ACLResourceType
	Name      string
	Operation kadm.ACLOperation
}

func (a ACL) String() string {
	return fmt.Sprintf("%s:%s %s", a.Resource, a.Name, a.Operation)
}

// clusterName is the resource name of the cluster in Kafka's ACLs.
const clusterName = "kafka-cluster"

// ACLs returns the rules that make up g, sorted and without repeats.
func (g Grants) ACLs() []ACL {
	var out []ACL
	add := func(rt kmsg.ACLResourceType, names []string, ops ...kadm.ACLOperation) {
		for _, n := range names {
			for _, op := range ops {
				out = append(out, ACL{Resource: rt, Name: n, Operation: op})
			}
		}
	}
	add(kmsg.ACLResourceTypeTopic, g.Produce, kadm.OpWrite, kadm.OpCreate, kadm.OpDescribe)
	add(kmsg.ACLResourceTypeTopic, g.Consume, kadm.OpRead, kadm.OpDescribe)
	add(kmsg.ACLResourceTypeGroup, g.Groups, kadm.OpRead, kadm.OpDescribe)
	if len(g.Produce) > 0 {
		add(kmsg.ACLResourceTypeCluster, []string{clusterName}, kadm.OpIdempotentWrite)
	}
	return sortACLs(out)
}

// sortACLs sorts acls by resource, name and operation and drops repeats.
func sortACLs(acls []ACL) []ACL {
	slices.SortFunc(acls, func(a, b ACL) int {
		return cmp.Or(cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Operation, b.Operation))
	})
	return slices.Compact(acls)
}

// Provision makes user a SCRAM-SHA-512 principal with password whose ACLs
// are exactly g: it upserts the credential, adds the missing rules, then
// removes the principal's allow rules that g no longer names, so that a
// service whose declaration shrank loses what it no longer needs. Running
// it again with the same arguments changes nothing but the credential's
// salt. admin must be a client of a principal allowed to alter users and
// ACLs (a superuser).
func Provision(ctx context.Context, admin *kgo.Client, user, password string, g Grants) error {
	if user == "" || password == "" {
		return errors.New("broker: provision: user and password are required")
	}
	adm := kadm.NewClient(admin)
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: scramIterations, Password: password,
	}})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		return fmt.Errorf("broker: provision %s: credential: %w", user, err)
	}
	principal := "User:" + user
	want := g.ACLs()
	for _, a := range want {
		b := kadm.NewACLs().Allow(principal).ResourcePatternType(kadm.ACLPatternLiteral).Operations(a.Operation)
		switch a.Resource {
		case kmsg.ACLResourceTypeTopic:
			b.Topics(a.Name)
		case kmsg.ACLResourceTypeGroup:
			b.Groups(a.Name)
		default:
			b.Clusters()
		}
		results, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("broker: provision %s: ACL %s: %w", user, a, err)
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("broker: provision %s: ACL %s: %w", user, a, r.Err)
			}
		}
	}
	return removeStaleACLs(ctx, admin, user, want)
}

// removeStaleACLs deletes the allow rules of user that are not in want.
func removeStaleACLs(ctx context.Context, admin *kgo.Client, user string, want []ACL) error {
	principal := "User:" + user
	described, err := kadm.NewClient(admin).DescribeACLs(ctx, kadm.NewACLs().Allow(principal).AllowHosts().
		AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
	for _, r := range described {
		err = cmp.Or(err, r.Err)
	}
	if err != nil {
		return fmt.Errorf("broker: provision %s: list ACLs: %w", user, err)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	for _, r := range described {
		for _, d := range r.Described {
			kept := d.Permission == kmsg.ACLPermissionTypeAllow && d.Pattern == kadm.ACLPatternLiteral && d.Host == "*" &&
				slices.Contains(want, ACL{Resource: d.Type, Name: d.Name, Operation: d.Operation})
			if kept || d.Principal != principal {
				continue
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = d.Type, kmsg.StringPtr(d.Name), d.Pattern
			f.Principal, f.Host = kmsg.StringPtr(d.Principal), kmsg.StringPtr(d.Host)
			f.Operation, f.PermissionType = d.Operation, d.Permission
			del.Filters = append(del.Filters, f)
		}
	}
	if len(del.Filters) == 0 {
		return nil
	}
	resp, err := del.RequestWith(ctx, admin)
	if err != nil {
		return fmt.Errorf("broker: provision %s: remove stale ACLs: %w", user, err)
	}
	for _, r := range resp.Results {
		err := kerr.ErrorForCode(r.ErrorCode)
		for _, m := range r.MatchingACLs {
			err = cmp.Or(err, kerr.ErrorForCode(m.ErrorCode))
		}
		if err != nil {
			return fmt.Errorf("broker: provision %s: remove stale ACLs: %w", user, err)
		}
	}
	return nil
}
