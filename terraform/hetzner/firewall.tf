# Applies to the cloud servers' public interfaces; traffic on the private network is not
# filtered by Hetzner firewalls (node-to-node Kubernetes traffic stays there). Dedicated
# servers are protected by their Robot firewall, configured outside Terraform.
resource "hcloud_firewall" "nodes" {
  name   = "${var.cluster_name}-nodes"
  labels = local.labels

  rule {
    description = "ping"
    direction   = "in"
    protocol    = "icmp"
    source_ips  = ["0.0.0.0/0", "::/0"]
  }

  rule {
    description = "SSH from the admin networks (ansible)"
    direction   = "in"
    protocol    = "tcp"
    port        = "22"
    source_ips  = var.admin_cidrs
  }

  rule {
    description = "Kubernetes API from the admin networks (kubectl, helm, CI)"
    direction   = "in"
    protocol    = "tcp"
    port        = "6443"
    source_ips  = var.admin_cidrs
  }

  # Without a load balancer, ad traffic reaches the nodes' ingress directly; with one, it
  # arrives over the private network and the public ports stay closed.
  dynamic "rule" {
    for_each = var.load_balancer_type == "" ? ["80", "443"] : []
    content {
      description = "ad traffic (HTTP/HTTPS) to the ingress"
      direction   = "in"
      protocol    = "tcp"
      port        = rule.value
      source_ips  = ["0.0.0.0/0", "::/0"]
    }
  }
}
