// Package kafkarest serves Confluent's Kafka REST v3 for one cluster from
// its data plane: the same endpoint as its Kafka clients (the front door
// tells HTTP from Kafka by the first byte), authenticated with the
// cluster's API keys. Each request is carried out by a Kafka client that
// signs in through the door as the caller, so that the brokers' ACLs
// decide what the caller may do, and a tenant of a shared cluster sees
// its own plain topic names, exactly as its Kafka clients do.
//
// Served: the cluster, topics (list, create, get, delete), a topic's
// configs (list, get, set, reset, batch alter) and partitions (list),
// ACLs (list, create, batch create, delete) and consumer groups (list,
// get, consumers, lags, lag summary).
package kafkarest

import (
	"context"
	_ "embed" // the OpenAPI document
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
)

// Config configures the REST server of one cluster.
type Config struct {
	// Kafka are the options of a client of the cluster's own endpoint
	// (seed brokers, TLS), to which the caller's credential is added.
	Kafka func() []kgo.Opt
	// Keys knows the cluster's keys: the tenant (LKC) a key belongs to,
	// which the path's cluster_id must be, and its owner.
	Keys Keys
	// Admin returns a client signed in as the cluster's own superuser,
	// which writes ACLs once the caller is found to administer the cluster
	// (see acls.go); nil, or a nil client: ACLs are not served.
	Admin func() *kadm.Client
	// HTTPS says the endpoint serves TLS (the door terminates it, so the
	// requests do not show it), for the URLs in the answers.
	HTTPS bool
}

// Keys is what the front door knows of the cluster's keys
// (kafkalisten.Tenants).
type Keys interface {
	Key(key string) (kafkalisten.Key, bool)
	LimitedKeys(tenant, owner string) []string
}

// OpenAPI is the document of what New serves, in the shapes of Confluent's
// published Kafka REST v3 document (written for this package, not copied),
// served at OpenAPIPath.
//
//go:embed openapi.json
var OpenAPI []byte

// OpenAPIPath is where the document is served, without authentication.
const OpenAPIPath = "/kafka/v3/openapi.json"

// New returns the REST v3 handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	const c = "/kafka/v3/clusters/{cluster_id}"
	mux.HandleFunc("GET "+c, s.with((*call).cluster))
	mux.HandleFunc("GET "+c+"/topics", s.with((*call).listTopics))
	mux.HandleFunc("POST "+c+"/topics", s.with((*call).createTopic))
	mux.HandleFunc("GET "+c+"/topics/{topic}", s.with((*call).getTopic))
	mux.HandleFunc("DELETE "+c+"/topics/{topic}", s.with((*call).deleteTopic))
	mux.HandleFunc("GET "+c+"/topics/{topic}/configs", s.with((*call).listConfigs))
	mux.HandleFunc("GET "+c+"/topics/{topic}/configs/{name}", s.with((*call).getConfig))
	mux.HandleFunc("PUT "+c+"/topics/{topic}/configs/{name}", s.with((*call).setConfig))
	mux.HandleFunc("DELETE "+c+"/topics/{topic}/configs/{name}", s.with((*call).resetConfig))
	mux.HandleFunc("POST "+c+"/topics/{topic}/configs:alter", s.with((*call).alterConfigs))
	mux.HandleFunc("GET "+c+"/topics/{topic}/partitions", s.with((*call).listPartitions))
	mux.HandleFunc("GET "+c+"/acls", s.with((*call).listACLs))
	mux.HandleFunc("POST "+c+"/acls", s.with((*call).createACL))
	mux.HandleFunc("POST "+c+"/acls:batch", s.with((*call).createACLBatch))
	mux.HandleFunc("DELETE "+c+"/acls", s.with((*call).deleteACLs))
	mux.HandleFunc("GET "+c+"/consumer-groups", s.with((*call).listGroups))
	mux.HandleFunc("GET "+c+"/consumer-groups/{group}", s.with((*call).getGroup))
	mux.HandleFunc("GET "+c+"/consumer-groups/{group}/consumers", s.with((*call).listConsumers))
	mux.HandleFunc("GET "+c+"/consumer-groups/{group}/lags", s.with((*call).listLags))
	mux.HandleFunc("GET "+c+"/consumer-groups/{group}/lag-summary", s.with((*call).lagSummary))
	mux.HandleFunc("GET "+OpenAPIPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI) // a failed write means the client went away
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 40400, "HTTP 404 Not Found: "+r.Method+" "+r.URL.Path+" is not served")
	})
	return mux
}

type server struct{ cfg Config }

// call is one request, with the caller's admin client.
type call struct {
	s         *server
	key       kafkalisten.Key
	w         http.ResponseWriter
	r         *http.Request
	adm       *kadm.Client
	clusterID string
	base      string // the cluster's URL: https://HOST/kafka/v3/clusters/ID
}

// with authenticates the caller, checks the cluster is its own, and runs
// h with a client signed in as the caller.
func (s *server) with(h func(*call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, secret, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="kafka"`)
			writeError(w, http.StatusUnauthorized, 40101, "Authentication failed: the cluster's API key and secret are required (HTTP Basic)")
			return
		}
		cluster := r.PathValue("cluster_id")
		k, ok := s.cfg.Keys.Key(key)
		if own := k.Tenant; !ok || own != cluster {
			// A key of another cluster, or none: as if the cluster were not
			// here, so that a guesser learns nothing of it.
			if !ok {
				writeError(w, http.StatusUnauthorized, 40101, "Authentication failed: invalid API key or secret")
				return
			}
			writeError(w, http.StatusNotFound, 40403, fmt.Sprintf("Cluster %s not found: the key belongs to another cluster", cluster))
			return
		}
		opts := append(s.cfg.Kafka(), kgo.SASL(plain.Auth{User: key, Pass: secret}.AsMechanism()),
			kgo.ClientID("mothership-kafka-rest"), kgo.RequestRetries(2), kgo.RetryTimeout(10*time.Second))
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			writeError(w, http.StatusInternalServerError, 50001, err.Error())
			return
		}
		defer cl.Close()
		scheme := "http"
		if s.cfg.HTTPS || r.TLS != nil {
			scheme = "https"
		}
		c := &call{s: s, key: k, w: w, r: r, adm: kadm.NewClient(cl), clusterID: cluster,
			base: scheme + "://" + r.Host + "/kafka/v3/clusters/" + cluster}
		if err := h(c); err != nil {
			writeKafkaError(w, err)
		}
	}
}

// Error is Kafka REST's error body.
type Error struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, Error{ErrorCode: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a failed write means the client went away
}

// writeKafkaError answers a broker's refusal with the status and error
// code Kafka REST gives it.
func writeKafkaError(w http.ResponseWriter, err error) {
	var ke *kerr.Error
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		writeError(w, http.StatusUnauthorized, 40101, "Authentication failed: invalid API key or secret")
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.GroupAuthorizationFailed):
		writeError(w, http.StatusForbidden, 40301, "Request is not authorized: "+err.Error())
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		writeError(w, http.StatusNotFound, 40403, "This server does not host this topic-partition.")
	case errors.Is(err, kerr.TopicAlreadyExists):
		writeError(w, http.StatusBadRequest, 40002, err.Error())
	case errors.Is(err, kerr.PolicyViolation), errors.Is(err, kerr.InvalidPartitions), errors.Is(err, kerr.InvalidReplicationFactor),
		errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidRequest):
		writeError(w, http.StatusBadRequest, 40002, err.Error())
	case errors.As(err, &ke):
		writeError(w, http.StatusInternalServerError, 50002, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, 50003, "the brokers did not answer in time")
	default:
		var be badRequest
		var fe forbidden
		var ue unavailable
		var ne notFound
		switch {
		case errors.As(err, &ne):
			writeError(w, http.StatusNotFound, 40403, ne.Error())
			return
		case errors.As(err, &be):
			writeError(w, http.StatusBadRequest, 40002, be.Error())
			return
		case errors.As(err, &fe):
			writeError(w, http.StatusForbidden, 40301, fe.Error())
			return
		case errors.As(err, &ue):
			writeError(w, http.StatusServiceUnavailable, 50301, ue.Error())
			return
		}
		writeError(w, http.StatusServiceUnavailable, 50301, "the cluster's brokers could not be reached: "+err.Error())
	}
}

// badRequest is a request the server refuses before asking the brokers.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

// forbidden is a request the caller may not make, found before asking the
// brokers.
type forbidden struct{ msg string }

func (e forbidden) Error() string { return e.msg }

// notFound is a resource the brokers do not have.
type notFound struct{ msg string }

func (e notFound) Error() string { return e.msg }

// unavailable is a request this endpoint does not serve now.
type unavailable struct{ msg string }

func (e unavailable) Error() string { return e.msg }

// Relationship points at a related resource.
type Relationship struct {
	Related string `json:"related"`
}

// ResourceMetadata is a resource's metadata.
type ResourceMetadata struct {
	Self         string `json:"self"`
	ResourceName string `json:"resource_name,omitempty"`
}

// CollectionMetadata is a list's metadata.
type CollectionMetadata struct {
	Self string  `json:"self"`
	Next *string `json:"next"`
}

// ClusterData is a cluster.
type ClusterData struct {
	Kind                   string           `json:"kind"`
	Metadata               ResourceMetadata `json:"metadata"`
	ClusterID              string           `json:"cluster_id"`
	ACLs                   Relationship     `json:"acls"`
	Brokers                Relationship     `json:"brokers"`
	BrokerConfigs          Relationship     `json:"broker_configs"`
	ConsumerGroups         Relationship     `json:"consumer_groups"`
	Topics                 Relationship     `json:"topics"`
	PartitionReassignments Relationship     `json:"partition_reassignments"`
}

// TopicData is a topic.
type TopicData struct {
	Kind              string           `json:"kind"`
	Metadata          ResourceMetadata `json:"metadata"`
	ClusterID         string           `json:"cluster_id"`
	TopicName         string           `json:"topic_name"`
	IsInternal        bool             `json:"is_internal"`
	ReplicationFactor int              `json:"replication_factor"`
	PartitionsCount   int              `json:"partitions_count"`
	Partitions        Relationship     `json:"partitions"`
	Configs           Relationship     `json:"configs"`
	Reassignments     Relationship     `json:"partition_reassignments"`
}

// TopicConfigData is a topic's config.
type TopicConfigData struct {
	Kind        string           `json:"kind"`
	Metadata    ResourceMetadata `json:"metadata"`
	ClusterID   string           `json:"cluster_id"`
	TopicName   string           `json:"topic_name"`
	Name        string           `json:"name"`
	Value       *string          `json:"value"`
	IsDefault   bool             `json:"is_default"`
	IsReadOnly  bool             `json:"is_read_only"`
	IsSensitive bool             `json:"is_sensitive"`
	Source      string           `json:"source"`
	Synonyms    []any            `json:"synonyms"`
}

// PartitionData is a partition.
type PartitionData struct {
	Kind         string           `json:"kind"`
	Metadata     ResourceMetadata `json:"metadata"`
	ClusterID    string           `json:"cluster_id"`
	TopicName    string           `json:"topic_name"`
	PartitionID  int32            `json:"partition_id"`
	Leader       Relationship     `json:"leader"`
	Replicas     Relationship     `json:"replicas"`
	Reassignment Relationship     `json:"reassignment"`
}

// List is a collection.
type List[T any] struct {
	Kind     string             `json:"kind"`
	Metadata CollectionMetadata `json:"metadata"`
	Data     []T                `json:"data"`
}

func (c *call) crn(parts ...string) string {
	out := "crn:///kafka=" + c.clusterID
	for i := 0; i+1 < len(parts); i += 2 {
		out += "/" + parts[i] + "=" + parts[i+1]
	}
	return out
}

func (c *call) clusterData() ClusterData {
	return ClusterData{Kind: "KafkaCluster", Metadata: ResourceMetadata{Self: c.base, ResourceName: c.crn()}, ClusterID: c.clusterID,
		ACLs: Relationship{Related: c.base + "/acls"}, Brokers: Relationship{Related: c.base + "/brokers"},
		BrokerConfigs: Relationship{Related: c.base + "/broker-configs"}, ConsumerGroups: Relationship{Related: c.base + "/consumer-groups"},
		Topics: Relationship{Related: c.base + "/topics"}, PartitionReassignments: Relationship{Related: c.base + "/topics/-/partitions/-/reassignment"}}
}

func (c *call) cluster() error {
	// Reaching the brokers proves the key works.
	if _, err := c.adm.BrokerMetadata(c.r.Context()); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, c.clusterData())
	return nil
}

func (c *call) topicData(d kadm.TopicDetail) TopicData {
	self := c.base + "/topics/" + d.Topic
	rf := 0
	for _, p := range d.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return TopicData{Kind: "KafkaTopic", Metadata: ResourceMetadata{Self: self, ResourceName: c.crn("topic", d.Topic)},
		ClusterID: c.clusterID, TopicName: d.Topic, IsInternal: d.IsInternal, ReplicationFactor: rf, PartitionsCount: len(d.Partitions),
		Partitions: Relationship{Related: self + "/partitions"}, Configs: Relationship{Related: self + "/configs"},
		Reassignments: Relationship{Related: self + "/partitions/-/reassignment"}}
}

func (c *call) listTopics() error {
	topics, err := c.adm.ListTopics(c.r.Context())
	if err != nil {
		return err
	}
	out := List[TopicData]{Kind: "KafkaTopicList", Metadata: CollectionMetadata{Self: c.base + "/topics"}, Data: []TopicData{}}
	for _, name := range topics.Names() {
		out.Data = append(out.Data, c.topicData(topics[name]))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// topic reads one topic, or fails with UNKNOWN_TOPIC_OR_PARTITION.
func (c *call) topic(name string) (kadm.TopicDetail, error) {
	topics, err := c.adm.ListTopics(c.r.Context(), name)
	if err != nil {
		return kadm.TopicDetail{}, err
	}
	d, ok := topics[name]
	if !ok {
		return d, kerr.UnknownTopicOrPartition
	}
	return d, d.Err
}

func (c *call) getTopic() error {
	d, err := c.topic(c.r.PathValue("topic"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, c.topicData(d))
	return nil
}

// CreateTopicRequest is the body of a topic's creation.
type CreateTopicRequest struct {
	TopicName         string `json:"topic_name"`
	PartitionsCount   *int32 `json:"partitions_count,omitempty"`
	ReplicationFactor *int16 `json:"replication_factor,omitempty"`
	Configs           []struct {
		Name  string  `json:"name"`
		Value *string `json:"value"`
	} `json:"configs,omitempty"`
	ValidateOnly bool `json:"validate_only,omitempty"`
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest{"the body is not valid: " + err.Error()}
	}
	return nil
}

func (c *call) createTopic() error {
	var in CreateTopicRequest
	if err := decode(c.r, &in); err != nil {
		return err
	}
	if in.TopicName == "" {
		return badRequest{"topic_name is required"}
	}
	partitions, rf := int32(-1), int16(-1)
	if in.PartitionsCount != nil {
		partitions = *in.PartitionsCount
	}
	if in.ReplicationFactor != nil {
		rf = *in.ReplicationFactor
	}
	configs := map[string]*string{}
	for _, kv := range in.Configs {
		configs[kv.Name] = kv.Value
	}
	create := c.adm.CreateTopics
	if in.ValidateOnly {
		create = c.adm.ValidateCreateTopics
	}
	resp, err := create(c.r.Context(), partitions, rf, configs, in.TopicName)
	if err != nil {
		return err
	}
	if r, ok := resp[in.TopicName]; ok && r.Err != nil {
		if r.ErrMessage != "" {
			return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
		}
		return r.Err
	}
	d := kadm.TopicDetail{Topic: in.TopicName}
	if !in.ValidateOnly {
		if d, err = c.topic(in.TopicName); err != nil {
			return err
		}
	}
	c.w.Header().Set("Location", c.base+"/topics/"+in.TopicName)
	writeJSON(c.w, http.StatusCreated, c.topicData(d))
	return nil
}

func (c *call) deleteTopic() error {
	name := c.r.PathValue("topic")
	if _, err := c.topic(name); err != nil {
		return err
	}
	resp, err := c.adm.DeleteTopics(c.r.Context(), name)
	if err != nil {
		return err
	}
	if r, ok := resp[name]; ok && r.Err != nil {
		return r.Err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// configs reads a topic's configs.
func (c *call) configs(topic string) ([]kadm.Config, error) {
	if _, err := c.topic(topic); err != nil {
		return nil, err
	}
	rs, err := c.adm.DescribeTopicConfigs(c.r.Context(), topic)
	if err != nil {
		return nil, err
	}
	r, err := rs.On(topic, nil)
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, r.Err
	}
	return r.Configs, nil
}

func (c *call) configData(topic string, cfg kadm.Config) TopicConfigData {
	self := c.base + "/topics/" + topic + "/configs/" + cfg.Key
	return TopicConfigData{Kind: "KafkaTopicConfig", Metadata: ResourceMetadata{Self: self, ResourceName: c.crn("topic", topic, "config", cfg.Key)},
		ClusterID: c.clusterID, TopicName: topic, Name: cfg.Key, Value: cfg.Value, IsDefault: cfg.Source.String() == "DEFAULT_CONFIG",
		IsReadOnly: false, IsSensitive: cfg.Sensitive, Source: cfg.Source.String(), Synonyms: []any{}}
}

func (c *call) listConfigs() error {
	topic := c.r.PathValue("topic")
	cfgs, err := c.configs(topic)
	if err != nil {
		return err
	}
	out := List[TopicConfigData]{Kind: "KafkaTopicConfigList", Metadata: CollectionMetadata{Self: c.base + "/topics/" + topic + "/configs"},
		Data: []TopicConfigData{}}
	for _, cfg := range cfgs {
		out.Data = append(out.Data, c.configData(topic, cfg))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (c *call) getConfig() error {
	topic, name := c.r.PathValue("topic"), c.r.PathValue("name")
	cfgs, err := c.configs(topic)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cfgs, func(cfg kadm.Config) bool { return cfg.Key == name })
	if i < 0 {
		writeError(c.w, http.StatusNotFound, 40403, fmt.Sprintf("Config %s not found for topic %s", name, topic))
		return nil
	}
	writeJSON(c.w, http.StatusOK, c.configData(topic, cfgs[i]))
	return nil
}

// alter applies config changes to a topic.
func (c *call) alter(topic string, changes []kadm.AlterConfig, validateOnly bool) error {
	if _, err := c.topic(topic); err != nil {
		return err
	}
	alter := c.adm.AlterTopicConfigs
	if validateOnly {
		alter = c.adm.ValidateAlterTopicConfigs
	}
	rs, err := alter(c.r.Context(), changes, topic)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Err != nil {
			if r.ErrMessage != "" {
				return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
			return r.Err
		}
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *call) setConfig() error {
	var in struct {
		Value *string `json:"value"`
	}
	if err := decode(c.r, &in); err != nil {
		return err
	}
	return c.alter(c.r.PathValue("topic"), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: c.r.PathValue("name"), Value: in.Value}}, false)
}

func (c *call) resetConfig() error {
	return c.alter(c.r.PathValue("topic"), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: c.r.PathValue("name")}}, false)
}

// AlterConfigsRequest is the body of a batch alter of configs.
type AlterConfigsRequest struct {
	Data []struct {
		Name      string  `json:"name"`
		Value     *string `json:"value"`
		Operation string  `json:"operation,omitempty"`
	} `json:"data"`
	ValidateOnly bool `json:"validate_only,omitempty"`
}

func (c *call) alterConfigs() error {
	var in AlterConfigsRequest
	if err := decode(c.r, &in); err != nil {
		return err
	}
	var changes []kadm.AlterConfig
	for _, d := range in.Data {
		op := kadm.SetConfig
		switch d.Operation {
		case "", "SET":
		case "DELETE":
			op = kadm.DeleteConfig
		default:
			return badRequest{fmt.Sprintf("operation %q: SET or DELETE", d.Operation)}
		}
		changes = append(changes, kadm.AlterConfig{Op: op, Name: d.Name, Value: d.Value})
	}
	return c.alter(c.r.PathValue("topic"), changes, in.ValidateOnly)
}

func (c *call) listPartitions() error {
	topic := c.r.PathValue("topic")
	d, err := c.topic(topic)
	if err != nil {
		return err
	}
	out := List[PartitionData]{Kind: "KafkaPartitionList", Metadata: CollectionMetadata{Self: c.base + "/topics/" + topic + "/partitions"},
		Data: []PartitionData{}}
	for _, p := range d.Partitions.Sorted() {
		self := c.base + "/topics/" + topic + "/partitions/" + strconv.Itoa(int(p.Partition))
		out.Data = append(out.Data, PartitionData{Kind: "KafkaPartition",
			Metadata:  ResourceMetadata{Self: self, ResourceName: c.crn("topic", topic, "partition", strconv.Itoa(int(p.Partition)))},
			ClusterID: c.clusterID, TopicName: topic, PartitionID: p.Partition,
			Leader:   Relationship{Related: self + "/replicas/" + strconv.Itoa(int(p.Leader))},
			Replicas: Relationship{Related: self + "/replicas"}, Reassignment: Relationship{Related: self + "/reassignment"}})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
