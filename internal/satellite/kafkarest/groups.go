package kafkarest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ConsumerGroupData is a consumer group.
type ConsumerGroupData struct {
	Kind              string           `json:"kind"`
	Metadata          ResourceMetadata `json:"metadata"`
	ClusterID         string           `json:"cluster_id"`
	ConsumerGroupID   string           `json:"consumer_group_id"`
	IsSimple          bool             `json:"is_simple"`
	PartitionAssignor string           `json:"partition_assignor"`
	State             string           `json:"state"`
	Type              string           `json:"type"`
	IsMixed           bool             `json:"is_mixed_consumer_group"`
	Coordinator       Relationship     `json:"coordinator"`
	Consumers         Relationship     `json:"consumers"`
	LagSummary        Relationship     `json:"lag_summary"`
}

// ConsumerData is a member of a consumer group.
type ConsumerData struct {
	Kind            string           `json:"kind"`
	Metadata        ResourceMetadata `json:"metadata"`
	ClusterID       string           `json:"cluster_id"`
	ConsumerGroupID string           `json:"consumer_group_id"`
	ConsumerID      string           `json:"consumer_id"`
	InstanceID      *string          `json:"instance_id"`
	ClientID        string           `json:"client_id"`
	Assignments     Relationship     `json:"assignments"`
}

// ConsumerLagData is a group's lag on one partition.
type ConsumerLagData struct {
	Kind            string           `json:"kind"`
	Metadata        ResourceMetadata `json:"metadata"`
	ClusterID       string           `json:"cluster_id"`
	ConsumerGroupID string           `json:"consumer_group_id"`
	TopicName       string           `json:"topic_name"`
	PartitionID     int32            `json:"partition_id"`
	CurrentOffset   int64            `json:"current_offset"`
	LogEndOffset    int64            `json:"log_end_offset"`
	Lag             int64            `json:"lag"`
	ConsumerID      string           `json:"consumer_id"`
	InstanceID      *string          `json:"instance_id"`
	ClientID        string           `json:"client_id"`
}

// ConsumerGroupLagSummaryData sums up a group's lag.
type ConsumerGroupLagSummaryData struct {
	Kind              string           `json:"kind"`
	Metadata          ResourceMetadata `json:"metadata"`
	ClusterID         string           `json:"cluster_id"`
	ConsumerGroupID   string           `json:"consumer_group_id"`
	MaxLagConsumerID  string           `json:"max_lag_consumer_id"`
	MaxLagInstanceID  *string          `json:"max_lag_instance_id"`
	MaxLagClientID    string           `json:"max_lag_client_id"`
	MaxLagTopicName   string           `json:"max_lag_topic_name"`
	MaxLagPartitionID int32            `json:"max_lag_partition_id"`
	MaxLag            int64            `json:"max_lag"`
	TotalLag          int64            `json:"total_lag"`
	MaxLagConsumer    Relationship     `json:"max_lag_consumer"`
	MaxLagPartition   Relationship     `json:"max_lag_partition"`
}

// groupState renders Kafka's group state (PreparingRebalance) as Kafka
// REST does (PREPARING_REBALANCE).
func groupState(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	if b.Len() == 0 {
		return "UNKNOWN"
	}
	return b.String()
}

func (c *call) groupURL(group string) string {
	return c.base + "/consumer-groups/" + group
}

func (c *call) groupData(g kadm.DescribedGroup) ConsumerGroupData {
	self := c.groupURL(g.Group)
	return ConsumerGroupData{Kind: "KafkaConsumerGroup", Metadata: ResourceMetadata{Self: self, ResourceName: c.crn("consumer-group", g.Group)},
		ClusterID: c.clusterID, ConsumerGroupID: g.Group, IsSimple: g.ProtocolType == "", PartitionAssignor: g.Protocol,
		State: groupState(g.State), Type: "CLASSIC", Coordinator: Relationship{Related: c.base + "/brokers/" + strconv.Itoa(int(g.Coordinator.NodeID))},
		Consumers: Relationship{Related: self + "/consumers"}, LagSummary: Relationship{Related: self + "/lag-summary"}}
}

func (c *call) listGroups() error {
	listed, err := c.adm.ListGroups(c.r.Context())
	if err != nil {
		return err
	}
	out := List[ConsumerGroupData]{Kind: "KafkaConsumerGroupList", Metadata: CollectionMetadata{Self: c.base + "/consumer-groups"},
		Data: []ConsumerGroupData{}}
	if len(listed) == 0 {
		writeJSON(c.w, http.StatusOK, out)
		return nil
	}
	described, err := c.adm.DescribeGroups(c.r.Context(), listed.Groups()...)
	if err != nil {
		return err
	}
	for _, g := range described.Sorted() {
		if g.Err == nil {
			out.Data = append(out.Data, c.groupData(g))
		}
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// group describes one group; a group the brokers do not know is 404, as
// Kafka REST answers (Kafka itself describes it as Dead).
func (c *call) group(name string) (kadm.DescribedGroup, error) {
	described, err := c.adm.DescribeGroups(c.r.Context(), name)
	if err != nil {
		return kadm.DescribedGroup{}, err
	}
	g, ok := described[name]
	if !ok || g.State == "Dead" {
		return g, notFound{fmt.Sprintf("Consumer group %s not found", name)}
	}
	if g.Err != nil {
		return g, g.Err
	}
	return g, nil
}

func (c *call) getGroup() error {
	g, err := c.group(c.r.PathValue("group"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, c.groupData(g))
	return nil
}

func (c *call) listConsumers() error {
	g, err := c.group(c.r.PathValue("group"))
	if err != nil {
		return err
	}
	out := List[ConsumerData]{Kind: "KafkaConsumerList", Metadata: CollectionMetadata{Self: c.groupURL(g.Group) + "/consumers"}, Data: []ConsumerData{}}
	for _, m := range g.Members {
		self := c.groupURL(g.Group) + "/consumers/" + m.MemberID
		out.Data = append(out.Data, ConsumerData{Kind: "KafkaConsumer",
			Metadata:  ResourceMetadata{Self: self, ResourceName: c.crn("consumer-group", g.Group, "consumer", m.MemberID)},
			ClusterID: c.clusterID, ConsumerGroupID: g.Group, ConsumerID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID,
			Assignments: Relationship{Related: self + "/assignments"}})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// lags returns a group's lag on every partition it has committed an
// offset on, sorted by topic and partition, as Kafka REST does.
func (c *call) lags(name string) ([]kadm.GroupMemberLag, error) {
	if _, err := c.group(name); err != nil {
		return nil, err
	}
	lags, err := c.adm.Lag(c.r.Context(), name)
	if err != nil {
		return nil, err
	}
	l, ok := lags[name]
	if !ok {
		return nil, notFound{fmt.Sprintf("Consumer group %s not found", name)}
	}
	if err := l.Error(); err != nil {
		return nil, err
	}
	var out []kadm.GroupMemberLag
	for _, m := range l.Lag.Sorted() {
		if m.Err != nil && !errors.Is(m.Err, kerr.UnknownTopicOrPartition) {
			return nil, m.Err
		}
		if m.Commit.At >= 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

func member(m kadm.GroupMemberLag) (id string, instance *string, client string) {
	if m.Member == nil {
		return "", nil, ""
	}
	return m.Member.MemberID, m.Member.InstanceID, m.Member.ClientID
}

func (c *call) listLags() error {
	name := c.r.PathValue("group")
	lags, err := c.lags(name)
	if err != nil {
		return err
	}
	out := List[ConsumerLagData]{Kind: "KafkaConsumerLagList", Metadata: CollectionMetadata{Self: c.groupURL(name) + "/lags"}, Data: []ConsumerLagData{}}
	for _, m := range lags {
		id, instance, client := member(m)
		self := fmt.Sprintf("%s/lags/%s/partitions/%d", c.groupURL(name), m.Topic, m.Partition)
		out.Data = append(out.Data, ConsumerLagData{Kind: "KafkaConsumerLag",
			Metadata:  ResourceMetadata{Self: self, ResourceName: c.crn("consumer-group", name, "lag", m.Topic, "partition", strconv.Itoa(int(m.Partition)))},
			ClusterID: c.clusterID, ConsumerGroupID: name, TopicName: m.Topic, PartitionID: m.Partition,
			CurrentOffset: m.Commit.At, LogEndOffset: m.End.Offset, Lag: max(m.Lag, 0), ConsumerID: id, InstanceID: instance, ClientID: client})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (c *call) lagSummary() error {
	name := c.r.PathValue("group")
	lags, err := c.lags(name)
	if err != nil {
		return err
	}
	self := c.groupURL(name) + "/lag-summary"
	out := ConsumerGroupLagSummaryData{Kind: "KafkaConsumerGroupLagSummary",
		Metadata: ResourceMetadata{Self: self, ResourceName: c.crn("consumer-group", name)}, ClusterID: c.clusterID,
		ConsumerGroupID: name, MaxLagPartitionID: -1}
	for _, m := range lags {
		lag := max(m.Lag, 0)
		out.TotalLag += lag
		if out.MaxLagPartitionID < 0 || lag > out.MaxLag {
			out.MaxLag, out.MaxLagTopicName, out.MaxLagPartitionID = lag, m.Topic, m.Partition
			out.MaxLagConsumerID, out.MaxLagInstanceID, out.MaxLagClientID = member(m)
		}
	}
	if out.MaxLagPartitionID < 0 {
		out.MaxLagPartitionID = 0
	}
	out.MaxLagConsumer = Relationship{Related: c.groupURL(name) + "/consumers/" + out.MaxLagConsumerID}
	out.MaxLagPartition = Relationship{Related: fmt.Sprintf("%s/topics/%s/partitions/%d", c.base, out.MaxLagTopicName, out.MaxLagPartitionID)}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
