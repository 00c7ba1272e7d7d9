package kafkalisten

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// BenchmarkFrontDoor measures what the front door costs a client: produce
// and fetch throughput, and the latency of one small produce, through it
// (with TLS, as clusters serve; and in plaintext) against the same broker
// on its own listener (kfake) and behind the listener clusters had before
// (Listen), in the same run; and through the door of a shared cluster,
// which maps the tenant's names in every request and response
// (door-tls-mapped: the client uses "orders", the broker holds
// "lkc-a.orders").
//
//	go test -run '^$' -bench BenchmarkFrontDoor -benchtime 20000x ./internal/runtime/kafkalisten/
func BenchmarkFrontDoor(b *testing.B) {
	for _, way := range []string{"kfake", "kfake-tls", "listen", "door-plaintext", "door-tls", "door-tls-mapped"} {
		b.Run(way, func(b *testing.B) {
			var addr string
			topic := ownTopic
			opts := []kgo.Opt{kgo.SASL(scram.Auth{User: tenantUser, Pass: tenantPass}.AsSha512Mechanism())}
			switch way {
			case "kfake":
				addr = newTenantClusterBehind(b, net.Listen, nil)
			case "kfake-tls":
				server, client, _ := testTLS(b)
				addr = newTenantClusterBehind(b, func(network, address string) (net.Listener, error) {
					ln, err := net.Listen(network, address)
					if err != nil {
						return nil, err
					}
					return tls.NewListener(ln, server), nil
				}, client)
				opts = append(opts, kgo.DialTLSConfig(client))
			case "listen":
				addr = newTenantClusterBehind(b, Listen, nil)
			case "door-plaintext":
				addr = newTenantClusterBehind(b, FrontDoor(FrontDoorConfig{}), nil)
				opts = []kgo.Opt{kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism())}
			case "door-tls":
				var clientTLS *tls.Config
				addr, clientTLS, _ = tlsDoor(b)
				opts = []kgo.Opt{kgo.DialTLSConfig(clientTLS), kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism())}
			case "door-tls-mapped":
				server, client, _ := testTLS(b)
				tenants := NewTenants("admin")
				tenants.Set([]Tenant{{ID: "lkc-a", Prefix: "lkc-a.", Keys: []string{tenantUser}}})
				addr = newTenantClusterBehind(b, FrontDoor(FrontDoorConfig{TLS: server, Tenants: tenants}), client)
				opts = []kgo.Opt{kgo.DialTLSConfig(client), kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism())}
				topic = strings.TrimPrefix(ownTopic, "lkc-a.")
			}
			benchClient(b, addr, topic, opts...)
		})
	}
}

// benchClient produces b.N records of 1 KiB, fetches them back, and times
// 1,000 single small produces one after another.
func benchClient(b *testing.B, addr, topic string, opts ...kgo.Opt) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(0),
		// Uncompressed random bytes: every byte crosses the door.
		kgo.ProducerBatchCompression(kgo.NoCompression())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 1024)
	rand.Read(value)
	// Warm up: connections made and authenticated.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, 1)
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	produced := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	start = time.Now()
	for got := 0; got < b.N+1; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	fetched := time.Since(start)
	lat := make([]time.Duration, 1000)
	for i := range lat {
		t0 := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	mb := float64(b.N) * 1024 / 1e6
	b.ReportMetric(mb/produced.Seconds(), "produce-MB/s")
	b.ReportMetric(mb/fetched.Seconds(), "fetch-MB/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "produce-p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "produce-p99-us")
	b.ReportMetric(0, "ns/op")
}
