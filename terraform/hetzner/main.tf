locals {
  labels = {
    cluster     = var.cluster_name
    environment = var.environment
    managed-by  = "terraform"
  }

  # Cloud servers in the first /20 of the private network, dedicated servers (vSwitch) in
  # the second. Each pool has its own address block, so adding a node never renumbers.
  cloud_subnet_cidr   = cidrsubnet(var.private_network_cidr, 4, 0)
  vswitch_subnet_cidr = cidrsubnet(var.private_network_cidr, 4, 1)
  pool_ip_offset = {
    system  = 10
    serving = 100
    data    = 300
    scylla  = 500
  }

  # One entry per cloud server: name => pool, index in the pool, type, private address.
  cloud_nodes = merge([
    for pool, spec in var.node_pools : {
      for i in range(spec.count) : "${var.cluster_name}-${pool}-${i + 1}" => {
        pool        = pool
        index       = i
        server_type = spec.server_type
        private_ip  = cidrhost(local.cloud_subnet_cidr, local.pool_ip_offset[pool] + i)
      }
    }
  ]...)

  # Spread placement groups hold at most 10 servers: one group per 10 servers of a pool,
  # so no two servers of a group share a physical host.
  placement_groups = merge([
    for pool, spec in var.node_pools : {
      for g in range(ceil(spec.count / 10)) : "${pool}-${g}" => pool
    }
  ]...)
}

resource "hcloud_ssh_key" "admin" {
  for_each   = var.ssh_public_keys
  name       = "${var.cluster_name}-${each.key}"
  public_key = each.value
  labels     = local.labels
}

resource "hcloud_placement_group" "spread" {
  for_each = local.placement_groups
  name     = "${var.cluster_name}-${each.key}"
  type     = "spread"
  labels   = merge(local.labels, { pool = each.value })
}

resource "hcloud_server" "node" {
  for_each = local.cloud_nodes

  name               = each.key
  server_type        = each.value.server_type
  image              = var.image
  location           = var.location
  ssh_keys           = [for k in hcloud_ssh_key.admin : k.id]
  firewall_ids       = [hcloud_firewall.nodes.id]
  placement_group_id = hcloud_placement_group.spread["${each.value.pool}-${floor(each.value.index / 10)}"].id
  labels             = merge(local.labels, { pool = each.value.pool })

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  network {
    network_id = hcloud_network.private.id
    ip         = each.value.private_ip
  }

  # The server must not come up before its subnet exists.
  depends_on = [hcloud_network_subnet.cloud]

  lifecycle {
    # Re-imaging a node is a deliberate act (taint it), not a side effect of a new image
    # release or an added admin key.
    ignore_changes = [image, ssh_keys]
  }
}
