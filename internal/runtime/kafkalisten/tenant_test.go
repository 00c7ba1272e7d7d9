package kafkalisten

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// sharedCluster is a kfake cluster of two brokers behind front doors that
// know two tenants, lkc-a and lkc-b, each with one key and prefixed ACLs,
// as the satellite sets them up.
type sharedCluster struct {
	addrs   []string
	admin   *kadm.Client
	tenants *Tenants
	// received is every byte the tenants' clients read, to check that no
	// tenant is ever shown a prefix.
	mu       sync.Mutex
	received []byte
	// proxyAddrs are a proxy's addresses, when the door is apart.
	proxyAddrs []string
}

var sharedTenants = map[string]string{"lkc-a": "key-a", "lkc-b": "key-b"}

const sharedSecret = "secret-of-the-key"

func newSharedCluster(t *testing.T, limits Limits) *sharedCluster {
	return newCluster(t, limits, false, "lkc-a.", "lkc-b.")
}

// newCluster makes the cluster behind the door in the cluster's own
// process (FrontDoor), or behind a proxy apart from its brokers (Proxy);
// prefixes are lkc-a's and lkc-b's ("" for a dedicated tenant).
func newCluster(t *testing.T, limits Limits, proxy bool, prefixes ...string) *sharedCluster {
	t.Helper()
	sc := &sharedCluster{tenants: NewTenants("admin")}
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.EnableSASL(), kfake.EnableACLs(), kfake.AllowAutoTopicCreation(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "adminpass")}
	if !proxy {
		opts = append(opts, kfake.ListenFn(FrontDoor(FrontDoorConfig{Tenants: sc.tenants})))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sc.addrs = c.ListenAddrs()
	brokerAddrs := sc.addrs
	if proxy {
		cfg := ProxyConfig{Tenants: sc.tenants, Upstream: brokerAddrs, Bootstrap: ProxyListener{Listen: "127.0.0.1:0"}}
		for i, a := range brokerAddrs {
			cfg.Brokers = append(cfg.Brokers, ProxyBroker{Node: int32(i), Upstream: a, ProxyListener: ProxyListener{Listen: "127.0.0.1:0"}})
		}
		p, err := NewProxy(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		sc.addrs = p.Addrs()[:1]
		sc.proxyAddrs = p.Addrs()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddrs...), kgo.ClientID(AdminClientID),
		kgo.SASL(scram.Auth{User: "admin", Pass: "adminpass"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	sc.admin = kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var doorTenants []Tenant
	for i, id := range []string{"lkc-a", "lkc-b"} {
		key, prefix := sharedTenants[id], prefixes[i]
		doorTenants = append(doorTenants, Tenant{ID: id, Prefix: prefix, Keys: []string{key}, Limits: limits})
		altered, err := sc.admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: key, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: sharedSecret}})
		if err != nil {
			t.Fatal(err)
		}
		altered.EachError(func(a kadm.AlteredUserSCRAM) { t.Fatalf("user %s: %v", a.User, a.Err) })
		pattern, resource := kadm.ACLPatternPrefixed, prefix
		if prefix == "" {
			pattern, resource = kadm.ACLPatternLiteral, "*"
		}
		for _, b := range []*kadm.ACLBuilder{
			kadm.NewACLs().Allow("User:" + key).ResourcePatternType(pattern).
				Topics(resource).Groups(resource).TransactionalIDs(resource).Operations(kadm.OpAll),
			kadm.NewACLs().Allow("User:" + key).Clusters().Operations(kadm.OpIdempotentWrite),
		} {
			results, err := sc.admin.CreateACLs(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Err != nil {
					t.Fatalf("ACL of %s: %v", key, r.Err)
				}
			}
		}
	}
	sc.tenants.Set(doorTenants)
	return sc
}

// recordingConn keeps what a tenant's client receives.
type recordingConn struct {
	net.Conn
	sc *sharedCluster
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.sc.mu.Lock()
	c.sc.received = append(c.sc.received, b[:n]...)
	c.sc.mu.Unlock()
	return n, err
}

// sawPrefix reports whether any tenant's client received a prefix.
func (sc *sharedCluster) sawPrefix() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, p := range []string{"lkc-a.", "lkc-b."} {
		if strings.Contains(string(sc.received), p) {
			return true
		}
	}
	return false
}

// client is a franz-go client of tenant id.
func (sc *sharedCluster) client(t *testing.T, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(sc.addrs...),
		kgo.SASL(plain.Auth{User: sharedTenants[id], Pass: sharedSecret}.AsMechanism()),
		kgo.RecordDeliveryTimeout(20 * time.Second),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, host)
			if err != nil {
				return nil, err
			}
			return &recordingConn{Conn: c, sc: sc}, nil
		})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestTenantsOfASharedClusterSeeAClusterOfTheirOwn(t *testing.T) {
	checkTenantsIsolated(t, newSharedCluster(t, Limits{}))
}

// TestProxyCarriesTenantsToBrokersApart: the same door as a proxy in front
// of brokers it reaches over the network (as on Kubernetes) maps names the
// same way, and shows clients only its own addresses.
func TestProxyCarriesTenantsToBrokersApart(t *testing.T) {
	sc := newCluster(t, Limits{}, true, "lkc-a.", "lkc-b.")
	checkTenantsIsolated(t, sc)
	sc.checkOnlyProxyAddresses(t, "lkc-a")
}

// TestProxyCarriesADedicatedClustersKeys: a dedicated tenant's names are
// the brokers' own, and its clients are still carried, for the brokers'
// addresses to be the proxy's.
func TestProxyCarriesADedicatedClustersKeys(t *testing.T) {
	sc := newCluster(t, Limits{}, true, "", "lkc-b.")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(sc.client(t, "lkc-a"))
	if r, err := adm.CreateTopic(ctx, 3, 1, nil, "orders"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	cl := sc.client(t, "lkc-a", kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("dedicated")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if fs := cl.PollFetches(ctx); fs.Err0() != nil || fs.NumRecords() != 1 {
		t.Fatalf("consume: %v, %d records", fs.Err0(), fs.NumRecords())
	}
	topics, err := sc.admin.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("orders") {
		t.Fatalf("the brokers hold %v, want the dedicated tenant's orders as it is", topics.Names())
	}
	sc.checkOnlyProxyAddresses(t, "lkc-a")
}

// checkOnlyProxyAddresses checks that tenant id's client is shown only the
// proxy's addresses for the brokers.
func (sc *sharedCluster) checkOnlyProxyAddresses(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	md, err := kadm.NewClient(sc.client(t, id)).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 {
		t.Fatalf("metadata shows %d brokers, want 3", len(md.Brokers))
	}
	for _, b := range md.Brokers {
		if addr := net.JoinHostPort(b.Host, fmt.Sprint(b.Port)); !slices.Contains(sc.proxyAddrs[1:], addr) {
			t.Errorf("broker %d shown at %s, not one of the proxy's %v", b.NodeID, addr, sc.proxyAddrs[1:])
		}
	}
}

func checkTenantsIsolated(t *testing.T, sc *sharedCluster) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// Both tenants create "orders", and use the same group and
	// transactional id: each gets its own.
	for _, id := range []string{"lkc-a", "lkc-b"} {
		adm := kadm.NewClient(sc.client(t, id))
		created, err := adm.CreateTopic(ctx, 3, 1, nil, "orders")
		if err != nil || created.Err != nil {
			t.Fatalf("%s: create orders: %v %v", id, err, created.Err)
		}
		if created.Topic != "orders" {
			t.Fatalf("%s: created topic answered as %q", id, created.Topic)
		}

		producer := sc.client(t, id, kgo.TransactionalID("writer"), kgo.DefaultProduceTopic("orders"))
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"one", "two"} {
			if err := producer.ProduceSync(ctx, kgo.StringRecord(id+"-"+v)).FirstErr(); err != nil {
				t.Fatalf("%s: produce: %v", id, err)
			}
		}
		if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("%s: commit: %v", id, err)
		}

		consumer := sc.client(t, id, kgo.ConsumerGroup("app"), kgo.ConsumeTopics("orders"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		var got []string
		for len(got) < 2 {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: consumed %v: %v", id, got, ctx.Err())
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s: consume %s/%d: %v", id, topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic != "orders" {
					t.Errorf("%s: record of topic %q", id, r.Topic)
				}
				got = append(got, string(r.Value))
			})
		}
		slices.Sort(got)
		if want := []string{id + "-one", id + "-two"}; !slices.Equal(got, want) {
			t.Fatalf("%s consumed %v, want only its own %v", id, got, want)
		}
		if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("%s: commit offsets: %v", id, err)
		}
	}

	// What each tenant's admin API shows is its own, under its own names.
	for _, id := range []string{"lkc-a", "lkc-b"} {
		adm := kadm.NewClient(sc.client(t, id))
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if names := topics.Names(); !slices.Equal(names, []string{"orders"}) {
			t.Errorf("%s lists topics %v, want [orders]", id, names)
		}
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if names := groups.Groups(); !slices.Equal(names, []string{"app"}) {
			t.Errorf("%s lists groups %v, want [app]", id, names)
		}
		described, err := adm.DescribeGroups(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if g := described["app"]; g.Err != nil || g.Group != "app" {
			t.Errorf("%s describes group app: %+v", id, g)
		}
		offsets, err := adm.FetchOffsets(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := offsets.Lookup("orders", 0); !ok && len(offsets) == 0 {
			t.Errorf("%s: no committed offsets of app: %+v", id, o)
		}
		for topic := range offsets {
			if topic != "orders" {
				t.Errorf("%s: offsets of %q", id, topic)
			}
		}
		txns, err := adm.ListTransactions(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if names := txns.TransactionalIDs(); !slices.Equal(names, []string{"writer"}) {
			t.Errorf("%s lists transactions %v, want [writer]", id, names)
		}
		configs, err := adm.DescribeTopicConfigs(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if c, err := configs.On("orders", nil); err != nil || c.Err != nil {
			t.Errorf("%s: describe configs of orders: %v %v", id, err, c.Err)
		}
		ends, err := adm.ListEndOffsets(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic != "orders" || o.Err != nil {
				t.Errorf("%s: end offset %+v", id, o)
			}
		})
	}
	if sc.sawPrefix() {
		t.Error("a tenant's client received a prefixed name")
	}
	// Naming the other tenant's group with its prefix reaches nothing of
	// the other's: the name is tenant a's own, and not a group it has.
	if _, err := kadm.NewClient(sc.client(t, "lkc-a")).DeleteGroup(ctx, "lkc-b.app"); err == nil {
		t.Error("tenant a deleted a group lkc-b.app")
	}

	// On the brokers, each tenant's names carry its prefix.
	topics, err := sc.admin.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); !slices.Equal(names, []string{"lkc-a.orders", "lkc-b.orders"}) {
		t.Fatalf("the brokers hold topics %v", names)
	}
	groups, err := sc.admin.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := groups.Groups(); !slices.Equal(names, []string{"lkc-a.app", "lkc-b.app"}) {
		t.Fatalf("the brokers hold groups %v", names)
	}
}

func TestTenantPastItsPartitionLimitGetsAPolicyError(t *testing.T) {
	sc := newSharedCluster(t, Limits{Partitions: 10, Topics: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(sc.client(t, "lkc-a"))

	if r, err := adm.CreateTopic(ctx, 8, 1, nil, "big"); err != nil || r.Err != nil {
		t.Fatalf("create 8 partitions of 10: %v %v", err, r.Err)
	}
	rs, err := adm.CreateTopics(ctx, 4, 1, nil, "more")
	if err != nil {
		t.Fatal(err)
	}
	r := rs["more"]
	if !errors.Is(r.Err, kerr.PolicyViolation) || !strings.Contains(r.ErrMessage, "limited to 10 partitions") {
		t.Fatalf("creating 4 more partitions past 10: err %v, message %q; want a policy violation naming the limit", r.Err, r.ErrMessage)
	}
	if strings.Contains(r.ErrMessage, "lkc-a.") {
		t.Fatalf("the message shows the prefix: %q", r.ErrMessage)
	}
	resp, err := adm.CreatePartitions(ctx, 3, "big")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp["big"]; !errors.Is(got.Err, kerr.PolicyViolation) {
		t.Fatalf("adding 3 partitions to 8 of 10: %+v", got)
	}
	if resp, err := adm.CreatePartitions(ctx, 2, "big"); err != nil || resp["big"].Err != nil {
		t.Fatalf("adding 2 partitions to 8 of 10: %v %+v", err, resp["big"])
	}

	// The other tenant's room is its own.
	if r, err := kadm.NewClient(sc.client(t, "lkc-b")).CreateTopic(ctx, 10, 1, nil, "big"); err != nil || r.Err != nil {
		t.Fatalf("tenant b's 10 partitions: %v %v", err, r.Err)
	}

	// A producer's topic is created through the same limits.
	producer := sc.client(t, "lkc-a", kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(5*time.Second))
	if err := producer.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err == nil {
		// no default topic: ProduceSync fails on the missing topic name
		t.Fatal("a record without a topic was produced")
	}
	err = producer.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("x")}).FirstErr()
	if err == nil {
		t.Fatal("a producer created a topic past the partition limit")
	}
	topics, err := sc.admin.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("lkc-a.auto") {
		t.Fatal("the broker holds a topic past the tenant's limit")
	}
}

func TestSharedClusterAutoCreatesWithinTheLimits(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(map[bool]string{false: "door", true: "proxy"}[proxy], func(t *testing.T) {
			sc := newCluster(t, Limits{Partitions: 100}, proxy, "lkc-a.", "lkc-b.")
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var seen []string
			// A door in front of a broker that is not the controller is
			// answered NOT_CONTROLLER when it creates the topic, and the
			// client asks again, maybe through another: it may take a few
			// metadata rounds, so they are not kept 5 s apart here, and the
			// record waits for them (CI found 20 s short on a loaded
			// machine).
			cl := sc.client(t, "lkc-a", kgo.AllowAutoTopicCreation(), kgo.WithHooks(connectHook(func(addr string) { seen = append(seen, addr) })),
				kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordDeliveryTimeout(50*time.Second))
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatalf("produce to a new topic: %v", err)
			}
			topics, err := sc.admin.ListTopics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := topics["lkc-a.auto"]; len(d.Partitions) != defaultPartitions {
				t.Fatalf("auto-created topic on the broker: %+v, want lkc-a.auto with %d partitions", d, defaultPartitions)
			}
			// The metadata that created the topic named the brokers as
			// clients must reach them.
			for _, addr := range seen {
				if proxy && !slices.Contains(sc.proxyAddrs, addr) {
					t.Errorf("the client dialed %s, not one of the proxy's %v", addr, sc.proxyAddrs)
				}
			}
		})
	}
}

// connectHook sees every address a client dials.
type connectHook func(addr string)

func (h connectHook) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, _ error) {
	h(net.JoinHostPort(m.Host, fmt.Sprint(m.Port)))
}

// rawTenant is a tenant's connection spoken by hand, for what no client
// sends on its own.
type rawTenant struct {
	conn net.Conn
	corr int32
}

// dialTenant signs in to addr as key with PLAIN.
func dialTenant(t *testing.T, addr, key string) (*rawTenant, *kmsg.SASLAuthenticateResponse) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	rt := &rawTenant{conn: conn}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, MechanismPlain
	if _, err := rt.request(hs); err != nil {
		t.Fatal(err)
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version = 1
	auth.SASLAuthBytes = []byte("\x00" + key + "\x00" + sharedSecret)
	resp, err := rt.request(auth)
	if err != nil {
		t.Fatal(err)
	}
	return rt, resp.(*kmsg.SASLAuthenticateResponse)
}

func (rt *rawTenant) request(req kmsg.Request) (kmsg.Response, error) {
	rt.corr++
	if _, err := rt.conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, rt.corr)); err != nil {
		return nil, err
	}
	frame, err := readFrame(rt.conn, maxRequestSize)
	if err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(frame[4:8])); corr != rt.corr {
		return nil, errors.New("answer to another request")
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	return resp, parseResponse(frame, resp)
}

// TestSharedClusterOffersOnlyWhatItMaps walks every request type the
// broker advertises: a tenant is offered exactly those the door maps, and
// a connection that sends another is closed, the request never reaching
// the broker.
func TestSharedClusterOffersOnlyWhatItMaps(t *testing.T) {
	sc := newSharedCluster(t, Limits{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	brokerKeys, err := sc.admin.ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var advertised []int16
	brokerKeys.Each(func(v kadm.BrokerApiVersions) {
		v.EachKeySorted(func(key, _, _ int16) { advertised = append(advertised, key) })
	})
	slices.Sort(advertised)
	advertised = slices.Compact(advertised)
	if len(advertised) < 40 {
		t.Fatalf("the broker advertises only %d request types: %v", len(advertised), advertised)
	}

	tenantCl := sc.client(t, "lkc-a")
	versions, err := kadm.NewClient(tenantCl).ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offered := map[int16]bool{}
	versions.Each(func(v kadm.BrokerApiVersions) {
		v.EachKeySorted(func(key, _, _ int16) { offered[key] = true })
	})
	for _, key := range advertised {
		name := kmsg.NameForKey(key)
		if offeredToTenants(key) != offered[key] {
			t.Errorf("%s (%d): offered to a tenant %v, mapped by the door %v", name, key, offered[key], offeredToTenants(key))
		}
		if offeredToTenants(key) {
			continue
		}
		rt, auth := dialTenant(t, sc.addrs[0], "key-a")
		if auth.ErrorCode != 0 {
			t.Fatalf("sign in: %v", kerr.ErrorForCode(auth.ErrorCode))
		}
		req := kmsg.RequestForKey(key)
		req.SetVersion(req.MaxVersion())
		if resp, err := rt.request(req); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s (%d) sent by a tenant: answered %v, %v; want the connection closed", name, key, resp, err)
		}
	}
	// The cluster's admin is offered everything.
	if len(brokerKeys) == 0 {
		t.Fatal("no broker answered the admin's ApiVersions")
	}
}

func TestTenantConnectionsAreLimited(t *testing.T) {
	sc := newSharedCluster(t, Limits{Connections: 2})
	var open []*rawTenant
	for range 2 {
		rt, auth := dialTenant(t, sc.addrs[0], "key-a")
		if auth.ErrorCode != 0 {
			t.Fatalf("connection within the limit: %v", kerr.ErrorForCode(auth.ErrorCode))
		}
		open = append(open, rt)
	}
	_, auth := dialTenant(t, sc.addrs[1], "key-a")
	if auth.ErrorCode != kerr.SaslAuthenticationFailed.Code || auth.ErrorMessage == nil || !strings.Contains(*auth.ErrorMessage, "allows 2 client connections") {
		t.Fatalf("a third connection: %v %v; want refused naming the limit", kerr.ErrorForCode(auth.ErrorCode), auth.ErrorMessage)
	}
	// The other tenant is not affected.
	if _, auth := dialTenant(t, sc.addrs[0], "key-b"); auth.ErrorCode != 0 {
		t.Fatalf("tenant b: %v", kerr.ErrorForCode(auth.ErrorCode))
	}
	open[0].conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, auth := dialTenant(t, sc.addrs[0], "key-a")
		if auth.ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's room never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTenantPastItsProduceRateIsThrottled(t *testing.T) {
	sc := newSharedCluster(t, Limits{ProduceBytesPerSecond: 1000})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if r, err := kadm.NewClient(sc.client(t, "lkc-a")).CreateTopic(ctx, 1, 1, nil, "orders"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	var mu sync.Mutex
	var throttled time.Duration
	hook := throttleHook(func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		throttled = max(throttled, d)
	})
	cl := sc.client(t, "lkc-a", kgo.WithHooks(hook), kgo.DefaultProduceTopic("orders"))
	// Random bytes: a client's compression must not shrink them.
	value := make([]byte, 5000)
	rand.Read(value)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if throttled < time.Second {
		t.Fatalf("5,000 bytes at 1,000 B/s were throttled %v; want seconds", throttled)
	}
}

type throttleHook func(time.Duration)

func (h throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) { h(d) }
