# Plugins of executor.pkr.hcl for Packer >= 1.7 (`packer init deploy/packer`). A file of its own
# because Packer 1.6 (Debian 12's package) rejects `required_plugins`; see executor.pkr.hcl.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}
