# What scripts/terraform-check.sh applies, resizes, plans, imports, renames
# and destroys against Mothership.

variable "dedicated_cku" {
  type    = number
  default = 1
}

variable "dedicated_name" {
  type    = string
  default = "tf-dedicated"
}

resource "confluent_environment" "check" {
  display_name = "tf-check"
}

resource "confluent_service_account" "app_manager" {
  display_name = "tf-app-manager"
  description  = "manages the dedicated cluster"
}

resource "confluent_service_account" "app_producer" {
  display_name = "tf-app-producer"
  description  = "writes to the topic"
}

resource "confluent_kafka_cluster" "basic" {
  display_name = "tf-basic"
  availability = "SINGLE_ZONE"
  cloud        = "AWS"
  region       = "us-west-2"
  basic {}

  environment {
    id = confluent_environment.check.id
  }
}

resource "confluent_kafka_cluster" "dedicated" {
  display_name = var.dedicated_name
  availability = "SINGLE_ZONE"
  cloud        = "AWS"
  region       = "us-west-2"
  dedicated {
    cku = var.dedicated_cku
  }

  environment {
    id = confluent_environment.check.id
  }
}

resource "confluent_role_binding" "app_manager_cluster_admin" {
  principal   = "User:${confluent_service_account.app_manager.id}"
  role_name   = "CloudClusterAdmin"
  crn_pattern = confluent_kafka_cluster.dedicated.rbac_crn
}

# A cluster-scoped key, with the provider's default wait until it works.
resource "confluent_api_key" "app_manager_kafka" {
  display_name = "tf-app-manager-kafka"
  description  = "Kafka API key of app-manager"
  owner {
    id          = confluent_service_account.app_manager.id
    api_version = confluent_service_account.app_manager.api_version
    kind        = confluent_service_account.app_manager.kind
  }

  managed_resource {
    id          = confluent_kafka_cluster.dedicated.id
    api_version = confluent_kafka_cluster.dedicated.api_version
    kind        = confluent_kafka_cluster.dedicated.kind

    environment {
      id = confluent_environment.check.id
    }
  }

  depends_on = [confluent_role_binding.app_manager_cluster_admin]
}

resource "confluent_kafka_topic" "orders" {
  kafka_cluster {
    id = confluent_kafka_cluster.dedicated.id
  }
  topic_name       = "orders"
  partitions_count = 3
  rest_endpoint    = confluent_kafka_cluster.dedicated.rest_endpoint
  credentials {
    key    = confluent_api_key.app_manager_kafka.id
    secret = confluent_api_key.app_manager_kafka.secret
  }
}

resource "confluent_kafka_acl" "app_producer_write_orders" {
  kafka_cluster {
    id = confluent_kafka_cluster.dedicated.id
  }
  resource_type = "TOPIC"
  resource_name = confluent_kafka_topic.orders.topic_name
  pattern_type  = "LITERAL"
  principal     = "User:${confluent_service_account.app_producer.id}"
  host          = "*"
  operation     = "WRITE"
  permission    = "ALLOW"
  rest_endpoint = confluent_kafka_cluster.dedicated.rest_endpoint
  credentials {
    key    = confluent_api_key.app_manager_kafka.id
    secret = confluent_api_key.app_manager_kafka.secret
  }
}

data "confluent_environment" "by_id" {
  id = confluent_environment.check.id
}

data "confluent_environment" "by_name" {
  display_name = confluent_environment.check.display_name
}

data "confluent_kafka_cluster" "by_id" {
  id = confluent_kafka_cluster.dedicated.id
  environment {
    id = confluent_environment.check.id
  }
}

data "confluent_kafka_cluster" "by_name" {
  display_name = confluent_kafka_cluster.dedicated.display_name
  environment {
    id = confluent_environment.check.id
  }
}

output "environment_id" {
  value = confluent_environment.check.id
}

output "dedicated_id" {
  value = confluent_kafka_cluster.dedicated.id
}

output "dedicated_rest_endpoint" {
  value = confluent_kafka_cluster.dedicated.rest_endpoint
}

output "lookups_agree" {
  # Each data source must find what the resources made.
  value = alltrue([
    data.confluent_environment.by_id.display_name == confluent_environment.check.display_name,
    data.confluent_environment.by_name.id == confluent_environment.check.id,
    data.confluent_kafka_cluster.by_id.display_name == confluent_kafka_cluster.dedicated.display_name,
    data.confluent_kafka_cluster.by_name.id == confluent_kafka_cluster.dedicated.id,
  ])
}
