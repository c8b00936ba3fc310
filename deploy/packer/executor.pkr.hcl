# Machine image for executor hosts: Debian 12 with Docker, gVisor (runsc registered with the
# daemon), git, the single-file executor binary and its systemd unit (`executor install`).
#
#   npm run package
#   packer init deploy/packer && packer build -var region=eu-west-1 deploy/packer
#
# Packer >= 1.7 installs the amazon plugin that deploy/packer/plugins.pkr.hcl requires (`packer
# init`) and builds the directory. This file alone is also valid for Packer 1.6 (Debian 12's
# package), whose amazon builder is built in and which knows no `required_plugins`:
# `packer validate deploy/packer/executor.pkr.hcl` (test/deploy/packer.test.ts runs it).
#
# The image holds no queue server URL or secret: at boot, write EXECUTOR_FRONTEND_URL,
# EXECUTOR_FRONTEND_PASSWORD and EXECUTOR_QUEUE_NAME into /etc/executor/executor.env (user data,
# a secrets agent) and start executor.service. Never built in this repository's CI: building needs
# an AWS account (it starts an EC2 instance and registers an AMI); CI validates it only.

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
      # Plain `docker info`: Packer reads {{ }} in inline commands as its own template.
      "docker info | grep -Eq '^ *Runtimes:.* runsc( |$)'",
      "systemctl daemon-reload",
      # Enabled but not started: it needs the frontend settings written at boot.
      "systemctl enable executor",
    ]
  }
}
