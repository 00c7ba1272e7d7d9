# A fresh state into which scripts/terraform-check.sh imports the Dedicated
# cluster that ../main.tf made (import id ENV_ID/CLUSTER_ID), then plans:
# the imported cluster must match this description with no changes.

variable "environment_id" {
  type = string
}

variable "dedicated_cku" {
  type = number
}

variable "dedicated_name" {
  type = string
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
    id = var.environment_id
  }
}
