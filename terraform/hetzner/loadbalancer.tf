# Hetzner load balancer in front of the serving nodes (production). It forwards TCP 80/443
# over the private network to the NodePorts of k3s' Traefik ingress on the serving nodes
# (deploy/manifests/traefik/helmchartconfig-production.yaml: 30080 and 30443).
resource "hcloud_load_balancer" "serving" {
  count = var.load_balancer_type == "" ? 0 : 1

  name               = "${var.cluster_name}-serving"
  load_balancer_type = var.load_balancer_type
  location           = var.location
  labels             = local.labels
}

resource "hcloud_load_balancer_network" "serving" {
  count = length(hcloud_load_balancer.serving)

  load_balancer_id = hcloud_load_balancer.serving[0].id
  network_id       = hcloud_network.private.id
  depends_on       = [hcloud_network_subnet.cloud]
}

# Every cloud server labelled pool=serving in this cluster, now and later.
resource "hcloud_load_balancer_target" "serving_cloud" {
  count = length(hcloud_load_balancer.serving)

  type             = "label_selector"
  load_balancer_id = hcloud_load_balancer.serving[0].id
  label_selector   = "cluster=${var.cluster_name},pool=serving"
  use_private_ip   = true
  depends_on       = [hcloud_load_balancer_network.serving]
}

# Dedicated serving servers are targeted by their public address.
resource "hcloud_load_balancer_target" "serving_dedicated" {
  for_each = {
    for s in var.dedicated_servers : s.name => s
    if s.pool == "serving" && var.load_balancer_type != ""
  }

  type             = "ip"
  load_balancer_id = hcloud_load_balancer.serving[0].id
  ip               = each.value.public_ip
}

resource "hcloud_load_balancer_service" "http" {
  count = length(hcloud_load_balancer.serving)

  load_balancer_id = hcloud_load_balancer.serving[0].id
  protocol         = "tcp"
  listen_port      = 80
  destination_port = 30080

  health_check {
    protocol = "tcp"
    port     = 30080
    interval = 5
    timeout  = 3
    retries  = 2
  }
}

resource "hcloud_load_balancer_service" "https" {
  count = length(hcloud_load_balancer.serving)

  load_balancer_id = hcloud_load_balancer.serving[0].id
  protocol         = "tcp"
  listen_port      = 443
  destination_port = 30443

  health_check {
    protocol = "tcp"
    port     = 30443
    interval = 5
    timeout  = 3
    retries  = 2
  }
}
