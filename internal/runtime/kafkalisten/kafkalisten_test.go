package kafkalisten

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten/kcattest"
)

const (
	tenantUser = "tenant-a"
	tenantPass = "tenant-a-pass"
	ownTopic   = "lkc-a.orders"
	otherTopic = "lkc-b.x"
)

// newTenantCluster starts a kfake cluster behind Listen with SASL and ACLs
// on, a SCRAM-SHA-512 superuser, and a tenant user allowed everything on the
// topics and groups prefixed "lkc-a.". It returns the bootstrap address.
func newTenantCluster(t *testing.T) string {
	t.Helper()
	return newTenantClusterBehind(t, Listen, nil)
}

// newTenantClusterBehind is newTenantCluster with listen as the broker's
// listener; tlsCfg, if set, is what its own admin client dials with.
func newTenantClusterBehind(t testing.TB, listen func(network, address string) (net.Listener, error), tlsCfg *tls.Config) string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "adminpass"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	opts := []kgo.Opt{
		kgo.SeedBrokers(addrs...), kgo.ClientID(AdminClientID),
		kgo.SASL(scram.Auth{User: "admin", Pass: "adminpass"}.AsSha512Mechanism()),
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User:       tenantUser,
		Mechanism:  kadm.ScramSha512,
		Iterations: 4096,
		Password:   tenantPass,
	}})
	if err != nil {
		t.Fatalf("create tenant user: %v", err)
	}
	altered.EachError(func(a kadm.AlteredUserSCRAM) { t.Fatalf("create tenant user %s: %v", a.User, a.Err) })

	acls := kadm.NewACLs().
		Allow("User:" + tenantUser).
		ResourcePatternType(kadm.ACLPatternPrefixed).
		Topics("lkc-a.").
		Groups("lkc-a.").
		Operations(kadm.OpAll)
	created, err := adm.CreateACLs(ctx, acls)
	if err != nil {
		t.Fatalf("create tenant ACLs: %v", err)
	}
	for _, r := range created {
		if r.Err != nil {
			t.Fatalf("create ACL on %s: %v", r.Name, r.Err)
		}
	}

	// Both topics exist, so that the foreign one is refused for want of
	// permission, not for being unknown.
	topics, err := adm.CreateTopics(ctx, 1, 1, nil, ownTopic, otherTopic)
	if err == nil {
		err = topics.Error()
	}
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	return strings.Join(addrs, ",")
}

func TestFranzGoTenantStaysInItsPrefix(t *testing.T) {
	addr := newTenantCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.SASL(scram.Auth{User: tenantUser, Pass: tenantPass}.AsSha512Mechanism()),
		kgo.ConsumerGroup("lkc-a.readers"),
		kgo.ConsumeTopics(ownTopic),
		kgo.RecordDeliveryTimeout(10*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: ownTopic, Value: []byte("order-1")}).FirstErr(); err != nil {
		t.Fatalf("produce to own topic: %v", err)
	}
	for got := false; !got; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed from %s: %v", ownTopic, err)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != "order-1" {
				t.Fatalf("consumed %q, want %q", r.Value, "order-1")
			}
			got = true
		})
	}

	err = cl.ProduceSync(ctx, &kgo.Record{Topic: otherTopic, Value: []byte("intrusion")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to %s: got %v, want %v", otherTopic, err, kerr.TopicAuthorizationFailed)
	}
}

// kcat runs kcat as the tenant against addr with args and stdin, and returns
// its stdout; err carries stderr.
func kcat(t *testing.T, addr, stdin string, args ...string) (string, error) {
	t.Helper()
	return kcattest.Run(t, addr, tenantUser, tenantPass, stdin, args...)
}

func TestKcatTenantStaysInItsPrefix(t *testing.T) {
	addr := newTenantCluster(t)

	if _, err := kcat(t, addr, "order-1\n", "-t", ownTopic, "-P"); err != nil {
		t.Fatalf("produce to own topic: %v", err)
	}
	got, err := kcat(t, addr, "", "-t", ownTopic, "-C", "-o", "beginning", "-e", "-c", "1")
	if err != nil {
		t.Fatalf("consume own topic: %v", err)
	}
	if got != "order-1\n" {
		t.Fatalf("consumed %q, want %q", got, "order-1\n")
	}

	_, err = kcat(t, addr, "intrusion\n", "-t", otherTopic, "-P")
	if err == nil {
		t.Fatalf("produce to %s succeeded, want it refused", otherTopic)
	}
	t.Logf("produce to %s refused as expected: %v", otherTopic, err)
}

// apiVersionsResponse is a response like kfake's, advertising SaslHandshake
// from saslMin.
func apiVersionsResponse(version, saslMin int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	for _, k := range [][3]int16{{0, 3, 11}, {17, saslMin, 1}, {18, 0, 5}, {36, 0, 2}} {
		key := kmsg.NewApiVersionsResponseApiKey()
		key.ApiKey, key.MinVersion, key.MaxVersion = k[0], k[1], k[2]
		resp.ApiKeys = append(resp.ApiKeys, key)
	}
	if version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = "metadata.version", 1, 20
		resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "metadata.version", 20, 20
		resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
		resp.FinalizedFeaturesEpoch = 1
	}
	return resp
}

// unsupportedVersionResponse is the v0 answer to an ApiVersions request of a
// version the broker does not serve, listing the given keys (kfake lists
// only ApiVersions itself).
func unsupportedVersionResponse(keys ...[3]int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	for _, k := range keys {
		key := kmsg.NewApiVersionsResponseApiKey()
		key.ApiKey, key.MinVersion, key.MaxVersion = k[0], k[1], k[2]
		resp.ApiKeys = append(resp.ApiKeys, key)
	}
	return resp
}

// requestFrame encodes req at version as a client sends it.
func requestFrame(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("unit")).AppendRequest(nil, req, corr)
}

// responseFrame encodes resp as kfake writes it: size, correlation id, the
// header tags of a flexible response except ApiVersions, then the body.
func responseFrame(resp kmsg.Response, corr int32) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func metadataResponse() *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = 12
	b := kmsg.NewMetadataResponseBroker()
	b.Host, b.Port = "127.0.0.1", 9092
	resp.Brokers = append(resp.Brokers, b)
	return resp
}

// writeChunks writes b to w at most chunk bytes at a time.
func writeChunks(w io.Writer, b []byte, chunk int) error {
	for len(b) > 0 {
		k := min(len(b), chunk)
		n, err := w.Write(b[:k])
		if err != nil {
			return err
		}
		if n != k {
			return fmt.Errorf("wrote %d of %d bytes", n, k)
		}
		b = b[k:]
	}
	return nil
}

// serve passes requests from a client through the connection wrapper that
// Wrap's listener hands out, then responses back, reading and writing at
// most chunk bytes at a time on the server side; it returns what the client
// received.
func serve(t *testing.T, requests, responses []byte, chunk int) []byte {
	t.Helper()
	client, server := net.Pipe()
	c := newConn(server)
	defer c.Close()
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	if err := client.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}

	sent := make(chan error, 1)
	go func() { sent <- writeChunks(client, requests, chunk) }()
	got := make([]byte, len(requests))
	for n := 0; n < len(got); {
		k, err := c.Read(got[n:min(len(got), n+chunk)])
		if err != nil {
			t.Fatalf("read requests: %v", err)
		}
		n += k
	}
	if err := <-sent; err != nil {
		t.Fatalf("send requests: %v", err)
	}
	if !bytes.Equal(got, requests) {
		t.Fatal("the requests changed on their way to the server")
	}

	type result struct {
		b   []byte
		err error
	}
	received := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(client)
		received <- result{b, err}
	}()
	if err := writeChunks(c, responses, chunk); err != nil {
		t.Fatalf("write responses: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-received
	if r.err != nil {
		t.Fatalf("receive responses: %v", r.err)
	}
	return r.b
}

func TestResponseStreamRewrite(t *testing.T) {
	type testCase struct {
		reason    string
		requests  [][]byte
		responses [][]byte
		want      [][]byte
	}
	cases := map[string]testCase{}
	for v := range int16(4) {
		cases[fmt.Sprintf("ApiVersions v%d", v)] = testCase{
			reason:    "the SaslHandshake entry is advertised from v0, the rest kept",
			requests:  [][]byte{requestFrame(kmsg.NewPtrApiVersionsRequest(), v, 7)},
			responses: [][]byte{responseFrame(apiVersionsResponse(v, 1), 7)},
			want:      [][]byte{responseFrame(apiVersionsResponse(v, 0), 7)},
		}
	}
	maps.Copy(cases, map[string]testCase{
		"already from v0": {
			reason:    "a response with nothing to change passes as it came",
			requests:  [][]byte{requestFrame(kmsg.NewPtrApiVersionsRequest(), 3, 1)},
			responses: [][]byte{responseFrame(apiVersionsResponse(3, 0), 1)},
			want:      [][]byte{responseFrame(apiVersionsResponse(3, 0), 1)},
		},
		"version too high, kfake": {
			reason:    "kfake's v0 UNSUPPORTED_VERSION answer to a v9 request lists no SaslHandshake and passes as it came",
			requests:  [][]byte{requestFrame(kmsg.NewPtrApiVersionsRequest(), 9, 2)},
			responses: [][]byte{responseFrame(unsupportedVersionResponse([3]int16{18, 0, 5}), 2)},
			want:      [][]byte{responseFrame(unsupportedVersionResponse([3]int16{18, 0, 5}), 2)},
		},
		"version too high, all keys listed": {
			reason:    "an UNSUPPORTED_VERSION answer is read as v0 whatever version was asked, so it is still rewritten",
			requests:  [][]byte{requestFrame(kmsg.NewPtrApiVersionsRequest(), 9, 3)},
			responses: [][]byte{responseFrame(unsupportedVersionResponse([3]int16{17, 1, 1}, [3]int16{18, 0, 5}), 3)},
			want:      [][]byte{responseFrame(unsupportedVersionResponse([3]int16{17, 0, 1}, [3]int16{18, 0, 5}), 3)},
		},
		"other request": {
			reason:    "only the answer to an ApiVersions request is looked at, even if its bytes would parse as one",
			requests:  [][]byte{requestFrame(kmsg.NewPtrMetadataRequest(), 12, 4)},
			responses: [][]byte{responseFrame(apiVersionsResponse(0, 1), 4)},
			want:      [][]byte{responseFrame(apiVersionsResponse(0, 1), 4)},
		},
		"unparsable body": {
			reason:    "an ApiVersions answer that does not parse passes as it came",
			requests:  [][]byte{requestFrame(kmsg.NewPtrApiVersionsRequest(), 3, 5)},
			responses: [][]byte{truncatedBody(responseFrame(apiVersionsResponse(3, 1), 5), 9)},
			want:      [][]byte{truncatedBody(responseFrame(apiVersionsResponse(3, 1), 5), 9)},
		},
		"stream of frames": {
			reason: "frames before and after the ApiVersions answer pass as they came",
			requests: [][]byte{
				requestFrame(kmsg.NewPtrMetadataRequest(), 12, 10),
				requestFrame(kmsg.NewPtrApiVersionsRequest(), 3, 11),
				requestFrame(kmsg.NewPtrMetadataRequest(), 12, 12),
			},
			responses: [][]byte{
				responseFrame(metadataResponse(), 10),
				responseFrame(apiVersionsResponse(3, 1), 11),
				responseFrame(metadataResponse(), 12),
			},
			want: [][]byte{
				responseFrame(metadataResponse(), 10),
				responseFrame(apiVersionsResponse(3, 0), 11),
				responseFrame(metadataResponse(), 12),
			},
		},
		"not Kafka framing": {
			reason: "a stream that does not start with Kafka framing (here the start of a TLS ClientHello) is no longer watched",
			requests: [][]byte{
				{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00},
				requestFrame(kmsg.NewPtrApiVersionsRequest(), 3, 1),
			},
			responses: [][]byte{responseFrame(apiVersionsResponse(3, 1), 1)},
			want:      [][]byte{responseFrame(apiVersionsResponse(3, 1), 1)},
		},
	})

	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requests, responses, want := bytes.Join(tc.requests, nil), bytes.Join(tc.responses, nil), bytes.Join(tc.want, nil)
			for _, chunk := range []int{1, 3, 7, 1 << 16} {
				if got := serve(t, requests, responses, chunk); !bytes.Equal(got, want) {
					t.Errorf("%s\nchunks of %d: got\n%x\nwant\n%x", tc.reason, chunk, got, want)
				}
			}
		})
	}
}

// truncatedBody cuts the body of frame to n bytes, fixing its size.
func truncatedBody(frame []byte, n int) []byte {
	b := bytes.Clone(frame[:8+n])
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// TestUsageSince: what a door carried between two reads of its counts;
// a door that restarted counts again from zero, and nothing is counted
// twice.
func TestUsageSince(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c := NewUsageCounter(start)
	c.Add("lkc-a", 100, 300)
	first := c.Snapshot()
	if got := UsageSince(ProxyUsage{}, first); got["lkc-a"] != (TenantBytes{In: 100, Out: 300}) {
		t.Fatalf("first read: %+v", got)
	}
	c.Add("lkc-a", 10, 0)
	c.Add("lkc-b", 5, 5)
	second := c.Snapshot()
	got := UsageSince(first, second)
	if len(got) != 2 || got["lkc-a"] != (TenantBytes{In: 10}) || got["lkc-b"] != (TenantBytes{In: 5, Out: 5}) {
		t.Fatalf("second read: %+v", got)
	}
	if again := UsageSince(second, second); len(again) != 0 {
		t.Fatalf("the same counts read twice: %+v", again)
	}
	restarted := NewUsageCounter(start.Add(time.Hour))
	restarted.Add("lkc-a", 7, 7)
	if got := UsageSince(second, restarted.Snapshot()); got["lkc-a"] != (TenantBytes{In: 7, Out: 7}) {
		t.Fatalf("after the door restarted: %+v", got)
	}
}
