resource "hcloud_network" "private" {
  name     = "${var.cluster_name}-private"
  ip_range = var.private_network_cidr
  labels   = local.labels
  # Dedicated servers on the vSwitch reach the cloud subnet through these routes.
  expose_routes_to_vswitch = var.vswitch_id > 0
}

resource "hcloud_network_subnet" "cloud" {
  network_id   = hcloud_network.private.id
  type         = "cloud"
  network_zone = var.network_zone
  ip_range     = local.cloud_subnet_cidr
}

resource "hcloud_network_subnet" "vswitch" {
  count = var.vswitch_id > 0 ? 1 : 0

  network_id   = hcloud_network.private.id
  type         = "vswitch"
  network_zone = var.network_zone
  ip_range     = local.vswitch_subnet_cidr
  vswitch_id   = var.vswitch_id
}
