package kafkalisten

import (
	"regexp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// tenantKeys are the request types the front door of a shared cluster
// maps between a tenant's names and the broker's: every one a client or an
// admin tool of a tenant sends, except those that would reach beyond the
// tenant (ACLs, users, quotas, log dirs, reassignments, features,
// telemetry) or that it does not map yet (share groups). A type not here
// is neither advertised to a tenant's client nor passed through: the
// connection that sends it is closed, as a broker closes one that sends a
// type it does not know. SaslHandshake and SaslAuthenticate are the door's
// own, before a client is a tenant.
var tenantKeys = map[int16]string{
	0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata",
	8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator",
	11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
	15: "DescribeGroups", 16: "ListGroups",
	17: "SaslHandshake", 18: "ApiVersions",
	19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords",
	22: "InitProducerID", 23: "OffsetForLeaderEpoch",
	24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit",
	32: "DescribeConfigs", 33: "AlterConfigs",
	36: "SaslAuthenticate", 37: "CreatePartitions",
	42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete",
	60: "DescribeCluster", 61: "DescribeProducers",
	65: "DescribeTransactions", 66: "ListTransactions",
	68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
	75: "DescribeTopicPartitions",
}

// dedicatedKeys are what a door apart from its brokers (Proxy) passes on
// for a dedicated cluster's keys beyond tenantKeys: the admin requests a
// broker answers by the key's ACLs. Those that name brokers' addresses
// the door does not rewrite (DescribeQuorum, share groups), and those that
// would change users or quotas, are not offered.
var dedicatedKeys = map[int16]string{
	29: "DescribeACLs", 30: "CreateACLs", 31: "DeleteACLs", 35: "DescribeLogDirs",
	43: "ElectLeaders", 45: "AlterPartitionAssignments", 46: "ListPartitionReassignments",
}

func offeredToDedicated(key int16) bool {
	_, ok := dedicatedKeys[key]
	return ok || offeredToTenants(key)
}

// offeredToTenants says whether a shared cluster's door advertises key.
func offeredToTenants(key int16) bool {
	_, ok := tenantKeys[key]
	return ok
}

// mapper maps one tenant's names: topics, groups and transactional ids
// get its prefix on the way to the broker and lose it on the way back,
// and what is not under the prefix is never shown.
type mapper struct{ prefix string }

func (m mapper) to(name string) string { return m.prefix + name }

func (m mapper) toPtr(name *string) {
	if name != nil {
		*name = m.prefix + *name
	}
}

func (m mapper) all(names []string) {
	for i := range names {
		names[i] = m.prefix + names[i]
	}
}

// from strips the prefix; ok is false for a name that is not the
// tenant's.
func (m mapper) from(name string) (string, bool) { return strings.CutPrefix(name, m.prefix) }

// back strips the prefix in place; a name that is not the tenant's is
// left as it is, for the callers that filter those out first or that
// only see names the request gave.
func (m mapper) back(name *string) {
	*name, _ = strings.CutPrefix(*name, m.prefix)
}

func (m mapper) backPtr(name *string) {
	if name != nil {
		m.back(name)
	}
}

func (m mapper) backAll(names []string) {
	for i := range names {
		m.back(&names[i])
	}
}

// message removes the prefix from an error message that names a topic
// or a group.
func (m mapper) message(msg *string) {
	if msg != nil {
		*msg = strings.ReplaceAll(*msg, m.prefix, "")
	}
}

// regex maps a subscription's pattern: the broker matches whole names,
// so the tenant's pattern matches its own names only after its prefix.
func (m mapper) regex(re *string) {
	if re != nil {
		*re = regexp.QuoteMeta(m.prefix) + "(?:" + *re + ")"
	}
}

func (m mapper) regexBack(re *string) {
	if re == nil {
		return
	}
	if inner, ok := strings.CutPrefix(*re, regexp.QuoteMeta(m.prefix)+"(?:"); ok {
		*re = strings.TrimSuffix(inner, ")")
	}
}

// request maps a request's names to the broker's, in place. Only the types
// of tenantKeys reach it.
func (m mapper) request(req kmsg.Request) {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		m.toPtr(r.TransactionID)
		for i := range r.Topics {
			m.topic(&r.Topics[i].Topic)
		}
	case *kmsg.FetchRequest:
		for i := range r.Topics {
			m.topic(&r.Topics[i].Topic)
		}
		for i := range r.ForgottenTopics {
			m.topic(&r.ForgottenTopics[i].Topic)
		}
	case *kmsg.ListOffsetsRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.MetadataRequest:
		for i := range r.Topics {
			m.toPtr(r.Topics[i].Topic)
		}
	case *kmsg.OffsetCommitRequest:
		r.Group = m.to(r.Group)
		for i := range r.Topics {
			m.topic(&r.Topics[i].Topic)
		}
	case *kmsg.OffsetFetchRequest:
		r.Group = m.to(r.Group)
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
		for i := range r.Groups {
			g := &r.Groups[i]
			g.Group = m.to(g.Group)
			for j := range g.Topics {
				m.topic(&g.Topics[j].Topic)
			}
		}
	case *kmsg.FindCoordinatorRequest:
		r.CoordinatorKey = m.to(r.CoordinatorKey)
		m.all(r.CoordinatorKeys)
	case *kmsg.JoinGroupRequest:
		r.Group = m.to(r.Group)
	case *kmsg.HeartbeatRequest:
		r.Group = m.to(r.Group)
	case *kmsg.LeaveGroupRequest:
		r.Group = m.to(r.Group)
	case *kmsg.SyncGroupRequest:
		r.Group = m.to(r.Group)
	case *kmsg.DescribeGroupsRequest:
		m.all(r.Groups)
	case *kmsg.CreateTopicsRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.DeleteTopicsRequest:
		m.all(r.TopicNames)
		for i := range r.Topics {
			m.toPtr(r.Topics[i].Topic)
		}
	case *kmsg.DeleteRecordsRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.InitProducerIDRequest:
		m.toPtr(r.TransactionalID)
	case *kmsg.OffsetForLeaderEpochRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.AddPartitionsToTxnRequest:
		r.TransactionalID = m.to(r.TransactionalID)
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
		for i := range r.Transactions {
			t := &r.Transactions[i]
			t.TransactionalID = m.to(t.TransactionalID)
			for j := range t.Topics {
				t.Topics[j].Topic = m.to(t.Topics[j].Topic)
			}
		}
	case *kmsg.AddOffsetsToTxnRequest:
		r.TransactionalID = m.to(r.TransactionalID)
		r.Group = m.to(r.Group)
	case *kmsg.EndTxnRequest:
		r.TransactionalID = m.to(r.TransactionalID)
	case *kmsg.TxnOffsetCommitRequest:
		r.TransactionalID = m.to(r.TransactionalID)
		r.Group = m.to(r.Group)
		for i := range r.Topics {
			m.topic(&r.Topics[i].Topic)
		}
	case *kmsg.DescribeConfigsRequest:
		for i := range r.Resources {
			if r.Resources[i].ResourceType == kmsg.ConfigResourceTypeTopic {
				r.Resources[i].ResourceName = m.to(r.Resources[i].ResourceName)
			}
		}
	case *kmsg.AlterConfigsRequest:
		for i := range r.Resources {
			r.Resources[i].ResourceName = m.to(r.Resources[i].ResourceName)
		}
	case *kmsg.CreatePartitionsRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.DeleteGroupsRequest:
		m.all(r.Groups)
	case *kmsg.IncrementalAlterConfigsRequest:
		for i := range r.Resources {
			r.Resources[i].ResourceName = m.to(r.Resources[i].ResourceName)
		}
	case *kmsg.OffsetDeleteRequest:
		r.Group = m.to(r.Group)
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.DescribeProducersRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
	case *kmsg.DescribeTransactionsRequest:
		m.all(r.TransactionalIDs)
	case *kmsg.ListTransactionsRequest:
		// Listed in full and filtered on the way back.
	case *kmsg.ConsumerGroupHeartbeatRequest:
		r.Group = m.to(r.Group)
		m.all(r.SubscribedTopicNames)
		m.regex(r.SubscribedTopicRegex)
	case *kmsg.ConsumerGroupDescribeRequest:
		m.all(r.Groups)
	case *kmsg.DescribeTopicPartitionsRequest:
		for i := range r.Topics {
			r.Topics[i].Topic = m.to(r.Topics[i].Topic)
		}
		if r.Cursor != nil {
			r.Cursor.Topic = m.to(r.Cursor.Topic)
		}
	}
}

// topic maps a topic name that may be absent (the request names topics by
// id in newer versions).
func (m mapper) topic(name *string) {
	if *name != "" {
		*name = m.prefix + *name
	}
}

// response maps a response's names back to the tenant's, in place, and
// drops what is not the tenant's from the answers that list a cluster's
// whole content (metadata, groups, transactions).
func (m mapper) response(resp kmsg.Response) {
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			t := &r.Topics[i]
			m.back(&t.Topic)
			for j := range t.Partitions {
				m.message(t.Partitions[j].ErrorMessage)
				for k := range t.Partitions[j].ErrorRecords {
					m.message(t.Partitions[j].ErrorRecords[k].ErrorMessage)
				}
			}
		}
	case *kmsg.FetchResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.ListOffsetsResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.MetadataResponse:
		r.Topics = slices.DeleteFunc(r.Topics, func(t kmsg.MetadataResponseTopic) bool {
			return t.Topic != nil && !strings.HasPrefix(*t.Topic, m.prefix)
		})
		for i := range r.Topics {
			m.backPtr(r.Topics[i].Topic)
		}
	case *kmsg.OffsetCommitResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.OffsetFetchResponse:
		r.Topics = slices.DeleteFunc(r.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return !strings.HasPrefix(t.Topic, m.prefix) })
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
		for i := range r.Groups {
			g := &r.Groups[i]
			m.back(&g.Group)
			g.Topics = slices.DeleteFunc(g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool {
				return t.Topic != "" && !strings.HasPrefix(t.Topic, m.prefix)
			})
			for j := range g.Topics {
				m.back(&g.Topics[j].Topic)
			}
		}
	case *kmsg.FindCoordinatorResponse:
		m.message(r.ErrorMessage)
		for i := range r.Coordinators {
			m.back(&r.Coordinators[i].Key)
			m.message(r.Coordinators[i].ErrorMessage)
		}
	case *kmsg.DescribeGroupsResponse:
		for i := range r.Groups {
			m.back(&r.Groups[i].Group)
			m.message(r.Groups[i].ErrorMessage)
		}
	case *kmsg.ListGroupsResponse:
		r.Groups = slices.DeleteFunc(r.Groups, func(g kmsg.ListGroupsResponseGroup) bool { return !strings.HasPrefix(g.Group, m.prefix) })
		for i := range r.Groups {
			m.back(&r.Groups[i].Group)
		}
	case *kmsg.CreateTopicsResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
			m.message(r.Topics[i].ErrorMessage)
		}
	case *kmsg.DeleteTopicsResponse:
		for i := range r.Topics {
			m.backPtr(r.Topics[i].Topic)
			m.message(r.Topics[i].ErrorMessage)
		}
	case *kmsg.DeleteRecordsResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.OffsetForLeaderEpochResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.AddPartitionsToTxnResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
		for i := range r.Transactions {
			t := &r.Transactions[i]
			m.back(&t.TransactionalID)
			for j := range t.Topics {
				m.back(&t.Topics[j].Topic)
			}
		}
	case *kmsg.TxnOffsetCommitResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.DescribeConfigsResponse:
		for i := range r.Resources {
			res := &r.Resources[i]
			if res.ResourceType == kmsg.ConfigResourceTypeTopic {
				m.back(&res.ResourceName)
			}
			m.message(res.ErrorMessage)
		}
	case *kmsg.AlterConfigsResponse:
		for i := range r.Resources {
			m.back(&r.Resources[i].ResourceName)
			m.message(r.Resources[i].ErrorMessage)
		}
	case *kmsg.CreatePartitionsResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
			m.message(r.Topics[i].ErrorMessage)
		}
	case *kmsg.DeleteGroupsResponse:
		for i := range r.Groups {
			m.back(&r.Groups[i].Group)
			m.message(r.Groups[i].ErrorMessage)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for i := range r.Resources {
			m.back(&r.Resources[i].ResourceName)
			m.message(r.Resources[i].ErrorMessage)
		}
	case *kmsg.OffsetDeleteResponse:
		for i := range r.Topics {
			m.back(&r.Topics[i].Topic)
		}
	case *kmsg.DescribeProducersResponse:
		for i := range r.Topics {
			t := &r.Topics[i]
			m.back(&t.Topic)
			for j := range t.Partitions {
				m.message(t.Partitions[j].ErrorMessage)
			}
		}
	case *kmsg.DescribeTransactionsResponse:
		for i := range r.TransactionStates {
			s := &r.TransactionStates[i]
			m.back(&s.TransactionalID)
			for j := range s.Topics {
				m.back(&s.Topics[j].Topic)
			}
		}
	case *kmsg.ListTransactionsResponse:
		r.TransactionStates = slices.DeleteFunc(r.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
			return !strings.HasPrefix(s.TransactionalID, m.prefix)
		})
		for i := range r.TransactionStates {
			m.back(&r.TransactionStates[i].TransactionalID)
		}
	case *kmsg.ConsumerGroupHeartbeatResponse:
		m.message(r.ErrorMessage)
	case *kmsg.ConsumerGroupDescribeResponse:
		for i := range r.Groups {
			g := &r.Groups[i]
			m.back(&g.Group)
			m.message(g.ErrorMessage)
			for j := range g.Members {
				mb := &g.Members[j]
				m.backAll(mb.SubscribedTopics)
				m.regexBack(mb.SubscribedTopicRegex)
				for k := range mb.Assignment.TopicPartitions {
					m.back(&mb.Assignment.TopicPartitions[k].Topic)
				}
				for k := range mb.TargetAssignment.TopicPartitions {
					m.back(&mb.TargetAssignment.TopicPartitions[k].Topic)
				}
			}
		}
	case *kmsg.DescribeTopicPartitionsResponse:
		r.Topics = slices.DeleteFunc(r.Topics, func(t kmsg.DescribeTopicPartitionsResponseTopic) bool {
			return t.Topic != nil && !strings.HasPrefix(*t.Topic, m.prefix)
		})
		for i := range r.Topics {
			m.backPtr(r.Topics[i].Topic)
		}
		if r.NextCursor != nil {
			if name, ok := m.from(r.NextCursor.Topic); ok {
				r.NextCursor.Topic = name
			} else {
				r.NextCursor = nil
			}
		}
	}
}
