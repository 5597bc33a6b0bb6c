locals {
  # Inventory host entry of every node, cloud and dedicated, by pool.
  inventory_hosts = {
    for pool in ["system", "serving", "data", "scylla"] : pool => merge(
      {
        for name, server in hcloud_server.node : name => {
          ansible_host = server.ipv4_address
          private_ip   = local.cloud_nodes[name].private_ip
        } if local.cloud_nodes[name].pool == pool
      },
      {
        for s in var.dedicated_servers : s.name => {
          ansible_host = s.public_ip
          private_ip   = s.private_ip
        } if s.pool == pool
      },
    )
  }
}

output "ansible_inventory" {
  description = "Ansible inventory (YAML) in the layout of ansible/inventory/example: terraform output -raw ansible_inventory > ansible/inventory/hetzner/hosts.yml"
  value = yamlencode({
    all = {
      vars = { ansible_user = "root" }
      children = {
        k3s_servers = { hosts = local.inventory_hosts["system"] }
        k3s_agents = {
          children = {
            serving = { hosts = local.inventory_hosts["serving"] }
            data    = { hosts = local.inventory_hosts["data"] }
            scylla  = { hosts = local.inventory_hosts["scylla"] }
          }
        }
      }
    }
  })
}

output "k3s_api_endpoint" {
  description = "Public address of the first k3s server (kubeconfig server, reachable from admin_cidrs)."
  value       = "https://${hcloud_server.node["${var.cluster_name}-system-1"].ipv4_address}:6443"
}

output "load_balancer_ipv4" {
  description = "Public IPv4 of the serving load balancer (point the ad-serving DNS name here), or null without one."
  value       = length(hcloud_load_balancer.serving) > 0 ? hcloud_load_balancer.serving[0].ipv4 : null
}

output "private_network_id" {
  description = "ID of the private network (for attaching more resources)."
  value       = hcloud_network.private.id
}

output "nodes" {
  description = "Every cloud server: pool, public IPv4, private IP."
  value = {
    for name, server in hcloud_server.node : name => {
      pool       = local.cloud_nodes[name].pool
      public_ip  = server.ipv4_address
      private_ip = local.cloud_nodes[name].private_ip
    }
  }
}
