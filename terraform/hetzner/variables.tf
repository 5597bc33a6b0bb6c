variable "hcloud_token" {
  description = "Hetzner Cloud API token (read/write) of the project the cluster lives in. Pass it as TF_VAR_hcloud_token, never in a file."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.hcloud_token) == 64
    error_message = "A Hetzner Cloud API token is 64 characters long."
  }
}

variable "cluster_name" {
  description = "Name prefix of every resource, and the value of their \"cluster\" label (e.g. adp-staging)."
  type        = string
  default     = "adp-staging"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name: 3-32 characters, lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Which deploy/helm values the cluster is meant for: staging or production (a label; also sizes nothing by itself)."
  type        = string
  default     = "staging"

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "location" {
  description = "Hetzner location of the cloud servers (fsn1, nbg1, hel1 are in network zone eu-central; dedicated servers attached through a vSwitch must be in the same zone)."
  type        = string
  default     = "fsn1"

  validation {
    condition     = contains(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"], var.location)
    error_message = "location must be one of fsn1, nbg1, hel1, ash, hil, sin."
  }
}

variable "network_zone" {
  description = "Network zone of the private network; must contain location (eu-central for fsn1/nbg1/hel1)."
  type        = string
  default     = "eu-central"

  validation {
    condition     = contains(["eu-central", "us-east", "us-west", "ap-southeast"], var.network_zone)
    error_message = "network_zone must be eu-central, us-east, us-west or ap-southeast."
  }
}

variable "private_network_cidr" {
  description = "IPv4 range of the private network all cluster traffic uses (the cloud subnet is carved from it, and the vSwitch subnet for dedicated servers)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.private_network_cidr, 0)) && tonumber(split("/", var.private_network_cidr)[1]) <= 16
    error_message = "private_network_cidr must be an IPv4 CIDR of /16 or larger, such as 10.0.0.0/16 (two /20 subnets are carved from it)."
  }
}

variable "ssh_public_keys" {
  description = "Map of name => SSH public key allowed to log in as root (ansible uses these)."
  type        = map(string)

  validation {
    condition     = length(var.ssh_public_keys) > 0 && alltrue([for k in values(var.ssh_public_keys) : can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp[0-9]+) ", k))])
    error_message = "Give at least one SSH public key (ssh-ed25519, ssh-rsa or ecdsa)."
  }
}

variable "admin_cidrs" {
  description = "Networks allowed to reach SSH (22) and the Kubernetes API (6443) on the public interfaces, e.g. your office or VPN range."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "admin_cidrs must be a non-empty list of IPv4 CIDRs such as 198.51.100.0/24."
  }
}

variable "image" {
  description = "OS image of the cloud servers; the ansible roles are tested on Debian 12."
  type        = string
  default     = "debian-12"
}

variable "node_pools" {
  description = <<-EOT
    Cloud server pools: count and server type of each. "system" are the k3s servers (1 or 3:
    etcd needs an odd number), "serving" run the adplatform roles, "data" Redpanda, ClickHouse,
    Dragonfly and MinIO, "scylla" ScyllaDB. A pool with count 0 is left out (e.g. production
    data and scylla nodes as dedicated servers, see dedicated_servers).
  EOT
  type = object({
    system  = object({ count = number, server_type = string })
    serving = object({ count = number, server_type = string })
    data    = object({ count = number, server_type = string })
    scylla  = object({ count = number, server_type = string })
  })
  default = {
    system  = { count = 3, server_type = "cpx41" }
    serving = { count = 0, server_type = "ccx33" }
    data    = { count = 0, server_type = "ccx33" }
    scylla  = { count = 0, server_type = "ccx33" }
  }

  validation {
    condition     = contains([1, 3, 5], var.node_pools.system.count)
    error_message = "node_pools.system.count must be 1, 3 or 5 (etcd quorum)."
  }
  validation {
    condition     = alltrue([for p in values(var.node_pools) : p.count >= 0 && p.count <= 100 && floor(p.count) == p.count])
    error_message = "Pool counts must be whole numbers from 0 to 100."
  }
  validation {
    condition     = alltrue([for p in values(var.node_pools) : can(regex("^(cx|cpx|cax|ccx)[0-9]+$", p.server_type))])
    error_message = "server_type must be a Hetzner Cloud type such as cpx41, cax31 or ccx63."
  }
  validation {
    condition     = var.node_pools.scylla.count == 0 || var.node_pools.scylla.count >= 3
    error_message = "ScyllaDB needs at least 3 nodes (replication factor 3), or 0 when it runs elsewhere."
  }
}

variable "dedicated_servers" {
  description = <<-EOT
    Hetzner dedicated (Robot) servers to join the cluster over a vSwitch. They are ordered and
    installed outside Terraform (installimage, leaving the data partitions free); Terraform
    connects the vSwitch to the private network and lists them in the ansible inventory.
    pool is one of serving, data, scylla; private_ip must be in the vSwitch subnet.
  EOT
  type = list(object({
    name       = string
    pool       = string
    public_ip  = string
    private_ip = string
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.dedicated_servers : contains(["serving", "data", "scylla"], s.pool)])
    error_message = "dedicated_servers[*].pool must be serving, data or scylla."
  }
  validation {
    condition     = alltrue([for s in var.dedicated_servers : can(cidrnetmask("${s.public_ip}/32")) && can(cidrnetmask("${s.private_ip}/32"))])
    error_message = "dedicated_servers[*].public_ip and private_ip must be IPv4 addresses."
  }
  validation {
    condition     = length(distinct([for s in var.dedicated_servers : s.name])) == length(var.dedicated_servers)
    error_message = "dedicated_servers names must be unique."
  }
}

variable "vswitch_id" {
  description = "ID of the Robot vSwitch the dedicated servers are on (0 = no dedicated servers)."
  type        = number
  default     = 0

  validation {
    condition     = var.vswitch_id >= 0
    error_message = "vswitch_id must be a Robot vSwitch ID, or 0."
  }
}

variable "load_balancer_type" {
  description = "Hetzner load balancer type in front of the serving nodes (lb11, lb21, lb31); \"\" for none (staging uses the nodes' Traefik directly)."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "lb11", "lb21", "lb31"], var.load_balancer_type)
    error_message = "load_balancer_type must be \"\", lb11, lb21 or lb31."
  }
}
