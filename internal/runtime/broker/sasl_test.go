package broker

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	testAdmin         = "mothership-admin"
	testAdminPassword = "admin-secret"
)

// startSASL starts a broker that requires SCRAM and enforces ACLs on dir,
// and returns it with a superuser client.
func startSASL(t *testing.T, dir string) (*Embedded, *kgo.Client) {
	t.Helper()
	b, err := Start(Config{DataDir: dir, AdminUser: testAdmin, AdminPassword: testAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	admin := client(t, b, SASLOpts(testAdmin, testAdminPassword)...)
	return b, admin
}

func client(t *testing.T, b *Embedded, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// aclsOf returns the ACLs the broker holds for user, as Grants.ACLs lists
// them.
func aclsOf(t *testing.T, admin *kgo.Client, user string) []ACL {
	t.Helper()
	described, err := kadm.NewClient(admin).DescribeACLs(t.Context(), kadm.NewACLs().Allow("User:"+user).AllowHosts().
		AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
	if err != nil {
		t.Fatalf("describe ACLs of %s: %v", user, err)
	}
	var out []ACL
	for _, r := range described {
		if r.Err != nil {
			t.Fatalf("describe ACLs of %s: %v", user, r.Err)
		}
		for _, d := range r.Described {
			if d.Pattern != kadm.ACLPatternLiteral || d.Host != "*" || d.Permission != kmsg.ACLPermissionTypeAllow {
				t.Errorf("unexpected ACL %+v", d)
			}
			out = append(out, ACL{Resource: d.Type, Name: d.Name, Operation: d.Operation})
		}
	}
	return sortACLs(out)
}

func TestStartWantsAdminUserAndPasswordTogether(t *testing.T) {
	for name, cfg := range map[string]Config{
		"user only":     {AdminUser: testAdmin},
		"password only": {AdminPassword: testAdminPassword},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.DataDir = t.TempDir()
			if b, err := Start(cfg); err == nil {
				b.Close()
				t.Fatal("started with half a superuser")
			}
		})
	}
}

func TestGrantsACLs(t *testing.T) {
	got := Grants{Produce: []string{"own"}, Consume: []string{"theirs", "own"}, Groups: []string{"svc"}}.ACLs()
	want := []ACL{
		{kmsg.ACLResourceTypeTopic, "own", kadm.OpRead},
		{kmsg.ACLResourceTypeTopic, "own", kadm.OpWrite},
		{kmsg.ACLResourceTypeTopic, "own", kadm.OpCreate},
		{kmsg.ACLResourceTypeTopic, "own", kadm.OpDescribe},
		{kmsg.ACLResourceTypeTopic, "theirs", kadm.OpRead},
		{kmsg.ACLResourceTypeTopic, "theirs", kadm.OpDescribe},
		{kmsg.ACLResourceTypeGroup, "svc", kadm.OpRead},
		{kmsg.ACLResourceTypeGroup, "svc", kadm.OpDescribe},
		{kmsg.ACLResourceTypeCluster, clusterName, kadm.OpIdempotentWrite},
	}
	if want, got := sortACLs(want), got; !slices.Equal(want, got) {
		t.Errorf("ACLs:\n got %v\nwant %v", got, want)
	}
	if got := (Grants{Consume: []string{"t"}}).ACLs(); slices.ContainsFunc(got, func(a ACL) bool { return a.Resource == kmsg.ACLResourceTypeCluster }) {
		t.Errorf("a consumer only got a cluster right: %v", got)
	}
}

func TestProvisionSetsExactlyTheGrantsAndIsIdempotent(t *testing.T) {
	_, admin := startSASL(t, t.TempDir())
	wide := Grants{Produce: []string{"a.x", "a.y"}, Consume: []string{"b.z"}, Groups: []string{"a"}}
	for range 2 {
		if err := Provision(t.Context(), admin, "a", "pw-a", wide); err != nil {
			t.Fatalf("provision: %v", err)
		}
		if want, got := wide.ACLs(), aclsOf(t, admin, "a"); !slices.Equal(want, got) {
			t.Fatalf("ACLs of a:\n got %v\nwant %v", got, want)
		}
	}
	narrow := Grants{Produce: []string{"a.x"}}
	if err := Provision(t.Context(), admin, "a", "pw-a", narrow); err != nil {
		t.Fatalf("provision narrower: %v", err)
	}
	if want, got := narrow.ACLs(), aclsOf(t, admin, "a"); !slices.Equal(want, got) {
		t.Fatalf("after narrowing, ACLs of a:\n got %v\nwant %v", got, want)
	}
	if err := Provision(t.Context(), admin, "", "pw", narrow); err == nil {
		t.Error("provisioned a user without a name")
	}
}

func TestWrongPasswordAndNoCredentialAreRefused(t *testing.T) {
	b, admin := startSASL(t, t.TempDir())
	if err := Provision(t.Context(), admin, "a", "pw-a", Grants{Produce: []string{"a.x"}}); err != nil {
		t.Fatal(err)
	}
	if err := client(t, b, SASLOpts("a", "pw-a")...).Ping(t.Context()); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	// A refused authentication ends the connection: Apache Kafka answers
	// SASL_AUTHENTICATION_FAILED first, the embedded broker just closes it.
	for name, opts := range map[string][]kgo.Opt{
		"wrong password": SASLOpts("a", "not-pw-a"),
		"unknown user":   SASLOpts("nobody", "pw-a"),
		"no credential":  nil,
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := client(t, b, opts...).Ping(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s: the broker answered", name)
		}
	}
}

func TestUsersAndACLsSurviveARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")
	b, admin := startSASL(t, dir)
	g := Grants{Produce: []string{"a.x"}}
	if err := Provision(t.Context(), admin, "a", "pw-a", g); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(t.Context(), client(t, b, SASLOpts("a", "pw-a")...), StateTopic("a.x")); err != nil {
		t.Fatalf("a creates its own topic: %v", err)
	}
	admin.Close()
	b.Close()

	b, admin = startSASL(t, dir)
	if want, got := g.ACLs(), aclsOf(t, admin, "a"); !slices.Equal(want, got) {
		t.Fatalf("after restart, ACLs of a:\n got %v\nwant %v", got, want)
	}
	a := client(t, b, SASLOpts("a", "pw-a")...)
	if err := a.ProduceSync(t.Context(), &kgo.Record{Topic: "a.x", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("after restart, a produces to its own topic: %v", err)
	}
}
