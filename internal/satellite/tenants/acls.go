package tenants

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACLs on a cluster name principals as Confluent Cloud does: the user or
// service account a key acts as (User:sa-…, User:u-…), and every key of
// that owner acts as it. Brokers authorize the SASL user, the key, so
// the owner's entries (the "owner records", which is what a caller
// creates, lists and deletes) are copied to each key of the owner that
// acts only as the ACLs allow. Keys whose owner administers the cluster
// have their tenant's whole part of it and need no copies.
//
// Who writes copies: whoever writes an owner record writes its copies
// after it, and deletes them before it (package kafkarest); Apply adds
// the copies of every owner record whenever the keys change. Apply never
// deletes a copy, so it cannot undo a creation it did not see; a copy
// outlives its record only if a deletion stops between the two, and the
// next deletion of the same filter finishes it.

// ACL is one access-control entry.
type ACL struct {
	ResourceType kmsg.ACLResourceType
	ResourceName string
	PatternType  kadm.ACLPattern
	Principal    string
	Host         string
	Operation    kadm.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// builder returns a builder of exactly this entry, as principal.
func (a ACL) builder(principal string) *kadm.ACLBuilder {
	b := kadm.NewACLs().ResourcePatternType(a.PatternType).Operations(a.Operation)
	if a.Permission == kmsg.ACLPermissionTypeDeny {
		b = b.Deny(principal).DenyHosts(a.Host)
	} else {
		b = b.Allow(principal).AllowHosts(a.Host)
	}
	switch a.ResourceType {
	case kmsg.ACLResourceTypeTopic:
		b = b.Topics(a.ResourceName)
	case kmsg.ACLResourceTypeGroup:
		b = b.Groups(a.ResourceName)
	case kmsg.ACLResourceTypeTransactionalId:
		b = b.TransactionalIDs(a.ResourceName)
	case kmsg.ACLResourceTypeCluster:
		b = b.Clusters()
	}
	return b
}

// IsOwner says whether principal names a user or service account, or
// every principal (User:*), whose entries are owner records, rather than
// a key or the admin.
func IsOwner(principal string) bool {
	id, ok := strings.CutPrefix(principal, "User:")
	return ok && (strings.HasPrefix(id, "sa-") || strings.HasPrefix(id, "u-") || id == "*")
}

// ListOwnerACLs returns every owner record on the cluster.
func ListOwnerACLs(ctx context.Context, adm *kadm.Client) ([]ACL, error) {
	results, err := adm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
		Operations(kadm.OpAny).Allow().AllowHosts().Deny().DenyHosts())
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	var out []ACL
	for _, r := range results {
		if r.Err != nil {
			return nil, fmt.Errorf("describe ACLs: %w %s", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			if IsOwner(d.Principal) {
				out = append(out, ACL{ResourceType: d.Type, ResourceName: d.Name, PatternType: d.Pattern, Principal: d.Principal,
					Host: d.Host, Operation: d.Operation, Permission: d.Permission})
			}
		}
	}
	return out, nil
}

// CreateACL writes an owner record, then its copy for each of keys (the
// owner's keys that act only as the ACLs allow).
func CreateACL(ctx context.Context, adm *kadm.Client, a ACL, keys []string) error {
	if err := create(ctx, adm, a.builder(a.Principal)); err != nil {
		return err
	}
	for _, k := range keys {
		if err := create(ctx, adm, a.builder("User:"+k)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteACL deletes the copies of an owner record for keys, then the
// record.
func DeleteACL(ctx context.Context, adm *kadm.Client, a ACL, keys []string) error {
	for _, k := range keys {
		if err := remove(ctx, adm, a.builder("User:"+k)); err != nil {
			return err
		}
	}
	return remove(ctx, adm, a.builder(a.Principal))
}

func create(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) error {
	results, err := adm.CreateACLs(ctx, b)
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("create ACL for %s on %s: %w %s", r.Principal, r.Name, r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}

func remove(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) error {
	results, err := adm.DeleteACLs(ctx, b)
	if err != nil {
		return fmt.Errorf("delete ACLs: %w", err)
	}
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("delete ACLs: %w %s", r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}

// Prefixed maps an entry a tenant names to the brokers' names: its topics,
// groups and transactional ids carry its prefix, and its wildcard is
// everything under the prefix. With no prefix (a dedicated cluster) it is
// the entry itself.
func (a ACL) Prefixed(prefix string) ACL {
	if prefix == "" || a.ResourceType == kmsg.ACLResourceTypeCluster {
		return a
	}
	if a.PatternType == kadm.ACLPatternLiteral && a.ResourceName == "*" {
		a.PatternType, a.ResourceName = kadm.ACLPatternPrefixed, prefix
		return a
	}
	a.ResourceName = prefix + a.ResourceName
	return a
}

// Unprefixed is the inverse of Prefixed; ok is false for an entry that is
// not the tenant's (a resource outside its prefix).
func (a ACL) Unprefixed(prefix string) (ACL, bool) {
	if prefix == "" || a.ResourceType == kmsg.ACLResourceTypeCluster {
		return a, true
	}
	name, ok := strings.CutPrefix(a.ResourceName, prefix)
	if !ok {
		return a, false
	}
	if name == "" && a.PatternType == kadm.ACLPatternPrefixed {
		a.PatternType, a.ResourceName = kadm.ACLPatternLiteral, "*"
		return a, true
	}
	a.ResourceName = name
	return a, true
}

// copies returns the copies of the owner records for the keys of a tenant
// that act only as the ACLs allow (owners: key → owner).
func copies(records []ACL, prefix string, owners map[string]string) []*kadm.ACLBuilder {
	var out []*kadm.ACLBuilder
	for key, owner := range owners {
		for _, r := range records {
			if r.Principal != "User:"+owner {
				continue
			}
			if _, ours := r.Unprefixed(prefix); !ours {
				continue
			}
			out = append(out, r.builder("User:"+key))
		}
	}
	return out
}
