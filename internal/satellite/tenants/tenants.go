// Package tenants realizes the tenants of a PKC on a running Kafka cluster
// through the Admin API: each key's salted SCRAM-SHA-512 credential, which
// the satellite opens with its own key (the password is never on the
// site), the ACLs of its tenant and its SKU's client quotas. Every driver
// whose brokers the satellite reaches uses it.
package tenants

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// Apply sets the cluster's SASL users to the keys of tenants (their
// credentials opened with siteKey) and their ACLs: a key whose owner
// administers its cluster may use, in a tenant with a prefix, only topics,
// groups and transactional ids under it, and without one (a dedicated PKC)
// the whole cluster; a key that acts only as the ACLs allow gets the copies
// of its owner's entries (see ACL). Users other than admin, the caller's
// own superuser, that no tenant holds any more lose their credentials and
// ACLs: a revoked key stops working at once.
func Apply(ctx context.Context, cl *kgo.Client, siteKey sitekey.PrivateKey, admin string, tenants map[string]resource.Tenant) error {
	adm := kadm.NewClient(cl)
	var upserts []kadm.UpsertSCRAM
	wanted := map[string]bool{}
	var acls, revokes []*kadm.ACLBuilder
	limited := map[string]map[string]string{} // tenant → ACL-only key → owner
	for _, lkc := range slices.Sorted(maps.Keys(tenants)) {
		t := tenants[lkc]
		if t.RetainedUntil != nil {
			continue // deleted, kept for a restore: no one signs in as it
		}
		var principals, restricted []string
		for _, u := range t.Users {
			plain, err := siteKey.Open(resource.SCRAMInfo(u.Name), u.SCRAM.Sealed)
			if err != nil {
				return fmt.Errorf("user %s of %s: the credential is not sealed to this satellite: %w", u.Name, lkc, err)
			}
			cred, err := resource.Decode[resource.SCRAMCredential](plain)
			if err != nil {
				return fmt.Errorf("user %s of %s: %w", u.Name, lkc, err)
			}
			wanted[u.Name] = true
			if u.ACLsOnly {
				restricted = append(restricted, "User:"+u.Name)
				if limited[lkc] == nil {
					limited[lkc] = map[string]string{}
				}
				limited[lkc][u.Name] = u.Owner
			} else {
				principals = append(principals, "User:"+u.Name)
			}
			upserts = append(upserts, kadm.UpsertSCRAM{User: u.Name, Mechanism: kadm.ScramSha512, Iterations: cred.Iterations,
				Salt: cred.Salt, SaltedPassword: cred.SaltedPassword})
		}
		if len(principals) > 0 {
			acls = append(acls, tenantGrants(t.Prefix, principals)...)
		}
		if len(restricted) > 0 {
			// A key that lost its owner's role loses the tenant's grants
			// (a copy of the same shape comes back below), and keeps
			// what every client needs to produce idempotently.
			for _, b := range tenantGrants(t.Prefix, restricted) {
				revokes = append(revokes, b.AllowHosts())
			}
			acls = append(acls, kadm.NewACLs().Allow(restricted...).Clusters().Operations(kadm.OpIdempotentWrite))
		}
	}
	existing, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		return fmt.Errorf("describe users: %w", err)
	}
	var deletes []kadm.DeleteSCRAM
	var stale []string
	for user, desc := range existing {
		if user == admin || wanted[user] {
			continue
		}
		stale = append(stale, "User:"+user)
		for _, cred := range desc.CredInfos {
			deletes = append(deletes, kadm.DeleteSCRAM{User: user, Mechanism: cred.Mechanism})
		}
	}
	if len(upserts) > 0 || len(deletes) > 0 {
		altered, err := adm.AlterUserSCRAMs(ctx, deletes, upserts)
		if err != nil {
			return fmt.Errorf("alter users: %w", err)
		}
		if err := altered.Error(); err != nil {
			return fmt.Errorf("alter users: %w", err)
		}
	}
	if len(stale) > 0 {
		b := kadm.NewACLs().Allow(stale...).AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny)
		if _, err := adm.DeleteACLs(ctx, b); err != nil {
			return fmt.Errorf("delete ACLs of removed users: %w", err)
		}
	}
	if err := quotas(ctx, adm, tenants, stale); err != nil {
		return err
	}
	for _, b := range revokes {
		if err := remove(ctx, adm, b); err != nil {
			return fmt.Errorf("revoke the grants of keys that act only as the ACLs allow: %w", err)
		}
	}
	if len(limited) > 0 {
		records, err := ListOwnerACLs(ctx, adm)
		if err != nil {
			return err
		}
		for _, lkc := range slices.Sorted(maps.Keys(limited)) {
			acls = append(acls, copies(records, tenants[lkc].Prefix, limited[lkc])...)
		}
	}
	for _, b := range acls {
		if err := create(ctx, adm, b); err != nil {
			return err
		}
	}
	return purgeTopics(ctx, cl, tenants)
}

// purgeTopics deletes, on a shared PKC, the topics of tenants it no
// longer holds: a cluster whose retention ended (one deleted but
// restorable is still a tenant, its topics kept). A topic of a tenant
// starts with its prefix, the LKC id and a dot; any other is left alone.
func purgeTopics(ctx context.Context, cl *kgo.Client, tenants map[string]resource.Tenant) error {
	if len(tenants) == 0 {
		return nil
	}
	held := map[string]bool{}
	for _, t := range tenants {
		if t.Prefix == "" {
			return nil // a dedicated PKC: its topics are its one tenant's
		}
		held[t.Prefix] = true
	}
	// Asked of the brokers, not of the client's metadata cache: a topic
	// made a moment ago must not outlive its tenant.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var gone []string
	for _, t := range md.Topics {
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		lkc, _, ok := strings.Cut(name, ".")
		if ok && strings.HasPrefix(lkc, "lkc-") && !held[lkc+"."] {
			gone = append(gone, name)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	deleted, err := kadm.NewClient(cl).DeleteTopics(ctx, gone...)
	if err != nil {
		return fmt.Errorf("delete the topics of purged tenants: %w", err)
	}
	if err := deleted.Error(); err != nil {
		return fmt.Errorf("delete the topics of purged tenants: %w", err)
	}
	return nil
}

// tenantGrants are what keys whose owner administers the cluster get: the
// tenant's part of the cluster.
func tenantGrants(prefix string, principals []string) []*kadm.ACLBuilder {
	if prefix == "" {
		return []*kadm.ACLBuilder{kadm.NewACLs().Allow(principals...).ResourcePatternType(kadm.ACLPatternLiteral).
			Topics("*").Groups("*").TransactionalIDs("*").Operations(kadm.OpAll),
			kadm.NewACLs().Allow(principals...).Clusters().Operations(kadm.OpIdempotentWrite, kadm.OpCreate, kadm.OpDescribe)}
	}
	return []*kadm.ACLBuilder{kadm.NewACLs().Allow(principals...).ResourcePatternType(kadm.ACLPatternPrefixed).
		Topics(prefix).Groups(prefix).TransactionalIDs(prefix).Operations(kadm.OpAll),
		kadm.NewACLs().Allow(principals...).Clusters().Operations(kadm.OpIdempotentWrite)}
}

// quotas sets each user's client quotas to its tenant's, and removes those
// of the users no tenant holds any more (stale, as "User:NAME").
func quotas(ctx context.Context, adm *kadm.Client, tenants map[string]resource.Tenant, stale []string) error {
	var entries []kadm.AlterClientQuotaEntry
	entity := func(name string) kadm.ClientQuotaEntity {
		return kadm.ClientQuotaEntity{{Type: "user", Name: &name}}
	}
	for _, lkc := range slices.Sorted(maps.Keys(tenants)) {
		t := tenants[lkc]
		if t.Quotas == nil {
			continue
		}
		for _, u := range t.Users {
			ops := []kadm.AlterClientQuotaOp{
				{Key: "producer_byte_rate", Value: float64(t.Quotas.ProducerByteRate)},
				{Key: "consumer_byte_rate", Value: float64(t.Quotas.ConsumerByteRate)},
				{Key: "request_percentage", Value: t.Quotas.RequestPercentage, Remove: t.Quotas.RequestPercentage == 0},
			}
			entries = append(entries, kadm.AlterClientQuotaEntry{Entity: entity(u.Name), Ops: ops})
		}
	}
	for _, p := range stale {
		name := strings.TrimPrefix(p, "User:")
		entries = append(entries, kadm.AlterClientQuotaEntry{Entity: entity(name), Ops: []kadm.AlterClientQuotaOp{
			{Key: "producer_byte_rate", Remove: true}, {Key: "consumer_byte_rate", Remove: true}, {Key: "request_percentage", Remove: true}}})
	}
	if len(entries) == 0 {
		return nil
	}
	results, err := adm.AlterClientQuotas(ctx, entries)
	if err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("client quotas of %s: %w %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	return nil
}

// Door is what a cluster's front door must know of its tenants: each
// one's prefix, keys and limits (the one table of limits, resource.SKUQuotas,
// which the PKC service put in the spec).
func Door(tenants map[string]resource.Tenant) []kafkalisten.Tenant {
	out := make([]kafkalisten.Tenant, 0, len(tenants))
	for _, lkc := range slices.Sorted(maps.Keys(tenants)) {
		t := tenants[lkc]
		if t.RetainedUntil != nil {
			continue // deleted: not served
		}
		dt := kafkalisten.Tenant{ID: lkc, Prefix: t.Prefix}
		for _, u := range t.Users {
			dt.Keys = append(dt.Keys, u.Name)
			if u.Owner != "" {
				if dt.Owners == nil {
					dt.Owners = map[string]string{}
				}
				dt.Owners[u.Name] = u.Owner
			}
			if u.ACLsOnly {
				dt.ACLsOnly = append(dt.ACLsOnly, u.Name)
			}
		}
		if q := t.Quotas; q != nil {
			dt.Limits = kafkalisten.Limits{Partitions: q.Partitions, Topics: q.Topics, Connections: q.Connections,
				ProduceBytesPerSecond: q.ProducerByteRate, FetchBytesPerSecond: q.ConsumerByteRate}
		}
		out = append(out, dt)
	}
	return out
}
