/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/providers/aws/plan.test.ts > TAP > rendered plan for AWS changes > text 1`] = `
Fleet actions are indicated with the following symbols:
  + create
  ~ update in-place
  - destroy

runfleet will perform the following actions:

  # fleet.build will be created
  + fleet "build" {
      + apply                                       = "auto"
      + capacity_per_instance                       = 1
      + connector.keepalive                         = "30s"
      + connector.port                              = 22
      + connector.protocol                          = "ssh"
      + connector.timeout                           = "10m"
      + connector.use_external_addr                 = false
      + connector.use_static_credentials            = false
      + connector.username                          = "runner"
      + delete_instances_on_shutdown                = true
      + docker.host                                 = "unix:///var/run/docker.sock"
      + docker.image                                = "alpine:3.20"
      + docker.privileged                           = false
      + docker.pull_policy                          = ["if-not-present"]
      + docker.volumes                              = []
      + docker.wait_for_services_timeout            = 30
      + executor                                    = "docker"
      + gitlab.check_interval                       = "500ms"
      + gitlab.request_concurrency                  = 1
      + gitlab.token                                = (sensitive value)
      + gitlab.url                                  = "https://gitlab.example.com"
      + max_instances                               = 8
      + max_use_count                               = 0
      + name                                        = "build"
      + policy[0].idle_count                        = 0
      + policy[0].idle_time                         = "20m"
      + policy[0].periods                           = ["* * * * *"]
      + policy[0].preemptive_mode                   = false
      + policy[0].scale_factor                      = 0
      + policy[0].scale_factor_limit                = 0
      + policy[0].timezone                          = "UTC"
      + provider.create.launch_template.name        = "runner-lt"
      + provider.create.launch_template.version     = "$Latest"
      + provider.create.subnets                     = ["subnet-b", "subnet-a"]
      + provider.region                             = "eu-west-1"
      + provider.type                               = "aws"
      + scale_throttle.burst                        = 8
      + scale_throttle.limit                        = 100
      + group.capacity_rebalance                    = false
      + group.instance_types                        = []
      + group.launch_template_name                  = "runner-lt"
      + group.launch_template_version               = "$Latest"
      + group.max_size                              = 8
      + group.min_size                              = 0
      + group.new_instances_protected_from_scale_in = true
      + group.subnets                               = ["subnet-a", "subnet-b"]
      + group.suspended_processes                   = ["AZRebalance"]
      + group.tags                                  = { runfleet:fleet = "build", runfleet:lifecycle = "owned" }
    }

  # fleet.deploy will be created
  + fleet "deploy" {
      + apply                            = "auto"
      + capacity_per_instance            = 1
      + connector.keepalive              = "30s"
      + connector.port                   = 22
      + connector.protocol               = "ssh"
      + connector.timeout                = "10m"
      + connector.use_external_addr      = false
      + connector.use_static_credentials = false
      + connector.username               = "runner"
      + delete_instances_on_shutdown     = true
      + docker.host                      = "unix:///var/run/docker.sock"
      + docker.image                     = "alpine:3.20"
      + docker.privileged                = false
      + docker.pull_policy               = ["if-not-present"]
      + docker.volumes                   = []
      + docker.wait_for_services_timeout = 30
      + executor                         = "docker"
      + gitlab.check_interval            = "500ms"
      + gitlab.request_concurrency       = 1
      + gitlab.token                     = (sensitive value)
      + gitlab.url                       = "https://gitlab.example.com"
      + max_instances                    = 4
      + max_use_count                    = 0
      + name                             = "deploy"
      + policy[0].idle_count             = 0
      + policy[0].idle_time              = "20m"
      + policy[0].periods                = ["* * * * *"]
      + policy[0].preemptive_mode        = false
      + policy[0].scale_factor           = 0
      + policy[0].scale_factor_limit     = 0
      + policy[0].timezone               = "UTC"
      + provider.auto_scaling_group      = "ci-deploy"
      + provider.region                  = "eu-west-1"
      + provider.type                    = "aws"
      + scale_throttle.burst             = 4
      + scale_throttle.limit             = 100
      ~ group.capacity_rebalance         = true -> false
      ~ group.max_size                   = 10 -> 4
      ~ group.min_size                   = 1 -> 0
      ~ group.suspended_processes        = [] -> ["AZRebalance"]
      ~ group.tags                       = {} -> { runfleet:fleet = "deploy", runfleet:lifecycle = "adopted" }
        # (1 unchanged attribute hidden)

      ~ capacity {
          ~ instances = 1 -> 0  # idle_count 0 slots / 1 per instance = 0 instances
          - instance "i-deploy1"  # idle_time: idle 1h > idle_time 20m
        }
    }

  # fleet.docs will be created
  + fleet "docs" {
      + apply                            = "auto"
      + capacity_per_instance            = 1
      + connector.keepalive              = "30s"
      + connector.port                   = 22
      + connector.protocol               = "ssh"
      + connector.timeout                = "10m"
      + connector.use_external_addr      = false
      + connector.use_static_credentials = false
      + connector.username               = "runner"
      + delete_instances_on_shutdown     = true
      + docker.host                      = "unix:///var/run/docker.sock"
      + docker.image                     = "alpine:3.20"
      + docker.privileged                = false
      + docker.pull_policy               = ["if-not-present"]
      + docker.volumes                   = []
      + docker.wait_for_services_timeout = 30
      + executor                         = "docker"
      + gitlab.check_interval            = "500ms"
      + gitlab.request_concurrency       = 1
      + gitlab.token                     = (sensitive value)
      + gitlab.url                       = "https://gitlab.example.com"
      + max_instances                    = 20
      + max_use_count                    = 0
      + name                             = "docs"
      + policy[0].idle_count             = 0
      + policy[0].idle_time              = "20m"
      + policy[0].periods                = ["* * * * *"]
      + policy[0].preemptive_mode        = false
      + policy[0].scale_factor           = 0
      + policy[0].scale_factor_limit     = 0
      + policy[0].timezone               = "UTC"
      + provider.auto_scaling_group      = "ci-docs"
      + provider.region                  = "eu-west-1"
      + provider.type                    = "aws"
      + scale_throttle.burst             = 20
      + scale_throttle.limit             = 100
      ~ group.tags                       = { runfleet:fleet = "website", runfleet:lifecycle = "adopted" } -> { runfleet:fleet = "docs", runfleet:lifecycle = "adopted" }
        # (5 unchanged attributes hidden)
    }

Plan: 3 to add, 0 to change, 1 to destroy.

╷
│ Error: Auto Scaling group ci-deploy has scaling policies attached: cpu50
│
│   fleet.deploy (fleets/deploy.yaml line 1), GROUP_HAS_SCALING_POLICIES
│
│ Hint: runfleet alone decides capacity; delete them (aws autoscaling delete-policy --auto-scaling-group-name ci-deploy --policy-name NAME)
╵

╷
│ Warning: instance i-stray is tagged runfleet:fleet=deploy but is outside any Auto Scaling group, not in ci-deploy
│
│   fleet.deploy (fleets/deploy.yaml line 1), ORPHAN_INSTANCE
│
│ Hint: runfleet never deletes it; terminate it by hand if it is not needed (aws ec2 terminate-instances)
╵

╷
│ Error: Auto Scaling group ci-docs is tagged runfleet:fleet=website, not docs
│
│   fleet.docs (fleets/docs.yaml line 1), GROUP_OWNED_BY_OTHER_FLEET
│
│ Hint: one group backs exactly one fleet: give this fleet its own group, or remove the other fleet first
╵

`
