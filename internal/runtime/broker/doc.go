// Package broker runs the embedded Kafka-protocol broker of the default
// deployment (franz-go's kfake, persisted in a data directory), creates the
// event topics on any Kafka with kadm, and gives each service a Kafka
// principal of its own.
//
// # Security: one principal per service
//
// When Config.AdminUser and Config.AdminPassword are set, the embedded
// broker accepts only clients that authenticate with SASL/SCRAM-SHA-512 and
// enforces ACLs; the admin user is a superuser. Each service then runs on
// its own principal, provisioned by Provision from what the service
// declares (host.Service.Grants): it may
//
//   - produce to and create the desired and status topics of the kinds it
//     owns (topic Write, Create, Describe; cluster IdempotentWrite for the
//     idempotent producer),
//   - consume the topics it reacts to (topic Read, Describe),
//   - join and commit in its own consumer group, named after it (group
//     Read, Describe),
//
// and nothing else: every rule is an allow rule on a literal name, so a
// service cannot write another service's topic (TOPIC_AUTHORIZATION_FAILED),
// read a topic it does not react to, or join another service's group. This
// is the Kafka half of the single-writer rule; the store enforces the
// database half. Provision is idempotent and exact: it upserts the
// credential and removes the principal's allow rules its grants no longer
// name. A client authenticates with the options of SASLOpts.
//
// # On Apache Kafka or Redpanda
//
// In production the event cluster is Apache Kafka or Redpanda, and the same
// code provisions it: Provision speaks only the Kafka admin protocol
// (AlterUserScramCredentials, CreateAcls, DescribeAcls, DeleteAcls), so a
// platform team runs it, with a superuser client, against the real cluster.
// The cluster needs:
//
//   - a SASL_SSL (or SASL_PLAINTEXT inside a trusted network) listener with
//     SCRAM-SHA-512 (Kafka: sasl.enabled.mechanisms=SCRAM-SHA-512; Redpanda:
//     a Kafka listener with authentication_method: sasl),
//   - an authorizer that denies what no ACL allows (Kafka KRaft:
//     authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
//     with allow.everyone.if.no.acl.found=false; Redpanda:
//     kafka_enable_authorization=true, which denies by default),
//   - the provisioning principal as a superuser (Kafka: super.users=User:NAME;
//     Redpanda: rpk cluster config set superusers ['NAME']),
//   - auto.create.topics.enable=false (Redpanda: auto_create_topics_enabled):
//     each service creates its own topics (EnsureTopics, under its Create
//     right) with the settings they need.
//
// Done by hand, the rules of one service are these (shown for a service
// "pkc" owning kind pkc and reacting to mothership.lkc.desired):
//
//	kafka-configs.sh --alter --entity-type users --entity-name pkc \
//	    --add-config 'SCRAM-SHA-512=[iterations=4096,password=...]'
//	kafka-acls.sh --add --allow-principal User:pkc --operation Write \
//	    --operation Create --operation Describe \
//	    --topic mothership.pkc.desired --topic mothership.pkc.status
//	kafka-acls.sh --add --allow-principal User:pkc --operation Read \
//	    --operation Describe --topic mothership.lkc.desired
//	kafka-acls.sh --add --allow-principal User:pkc --operation Read \
//	    --operation Describe --group pkc
//	kafka-acls.sh --add --allow-principal User:pkc --operation IdempotentWrite --cluster
//
// (On Redpanda, rpk security user create and rpk security acl create take
// the same principals, operations and resources.) Grants.ACLs lists exactly these
// rules, for a review or a diff against what the cluster holds.
package broker
