# Machine image for executor hosts: Debian 12 with Docker, gVisor (runsc registered with the
# daemon), git, the single-file executor binary and its systemd unit (`executor install`).
#
#   npm run package
#   packer init deploy/packer && packer build -var region=eu-west-1 deploy/packer/executor.pkr.hcl
#
# The image holds no queue server URL or secret: at boot, write EXECUTOR_FRONTEND_URL,
# EXECUTOR_FRONTEND_PASSWORD and EXECUTOR_QUEUE_NAME into /etc/executor/executor.env (user data,
# a secrets agent) and start executor.service. Never built in this repository's CI (no cloud
# account); `packer validate` is the check to run where Packer is installed.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type    = string
  default = "t3.medium"
}

variable "binary" {
  type        = string
  default     = "dist/sea/executor-linux-x64"
  description = "The single-file binary built by `npm run package`."
}

variable "registry_mirror" {
  type        = string
  default     = ""
  description = "Comma-separated registry mirror URLs written to daemon.json (empty: none)."
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "amazon-ebs" "executor" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "admin"
  ami_name      = "executor-${local.stamp}"
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"] # Debian
    most_recent = true
  }
  tags = {
    Name = "executor"
  }
}

build {
  sources = ["source.amazon-ebs.executor"]

  provisioner "file" {
    source      = var.binary
    destination = "/tmp/executor"
  }

  provisioner "shell" {
    environment_vars = ["REGISTRY_MIRROR=${var.registry_mirror}", "DEBIAN_FRONTEND=noninteractive"]
    execute_command  = "sudo -E sh -eu '{{ .Path }}'"
    inline = [
      "apt-get update",
      "apt-get install -y --no-install-recommends docker.io runsc git ca-certificates",
      "install -m 0755 /tmp/executor /usr/local/bin/executor",
      "systemctl enable --now docker",
      # Unit, env file, workspace root, runsc (and the mirror) in daemon.json; reloads dockerd.
      "executor install --with-gvisor ${var.registry_mirror != "" ? "--registry-mirror \"$REGISTRY_MIRROR\"" : ""}",
      "docker info --format '{{json .Runtimes}}' | grep -q runsc",
      "systemctl daemon-reload",
      # Enabled but not started: it needs the frontend settings written at boot.
      "systemctl enable executor",
    ]
  }
}
