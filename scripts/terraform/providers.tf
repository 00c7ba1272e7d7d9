# The provider is Confluent's own, unmodified, pointed at Mothership's API.
# scripts/terraform-check.sh installs it through a dev_overrides block, so
# no registry is asked and `tofu init` is not run.
terraform {
  required_providers {
    confluent = {
      source = "confluentinc/confluent"
    }
  }
}

variable "endpoint" {
  description = "Mothership's API, e.g. http://127.0.0.1:8080"
  type        = string
}

variable "cloud_api_key" {
  type      = string
  sensitive = true
}

variable "cloud_api_secret" {
  type      = string
  sensitive = true
}

provider "confluent" {
  endpoint         = var.endpoint
  cloud_api_key    = var.cloud_api_key
  cloud_api_secret = var.cloud_api_secret
}
