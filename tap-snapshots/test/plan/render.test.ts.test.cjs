/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/plan/render.test.ts > TAP > json: every kind of change > must match snapshot 1`] = `
{
  "basis": {
    "fleets": "fleets-hash",
    "observed": "observed-hash"
  },
  "createdAt": "2026-03-01T12:00:00.000Z",
  "diagnostics": [],
  "errored": true,
  "fleets": [
    {
      "action": "create",
      "capacity": {
        "current": 0,
        "increase": 2,
        "reason": "idle_count 2 slots / 1 per instance = 2 instances",
        "remove": [],
        "target": 2
      },
      "changes": [
        {
          "new": "auto",
          "path": "apply"
        },
        {
          "new": 1,
          "path": "capacity_per_instance"
        },
        {
          "new": "30s",
          "path": "connector.keepalive"
        },
        {
          "new": 22,
          "path": "connector.port"
        },
        {
          "new": "ssh",
          "path": "connector.protocol"
        },
        {
          "new": "10m",
          "path": "connector.timeout"
        },
        {
          "new": false,
          "path": "connector.use_external_addr"
        },
        {
          "new": false,
          "path": "connector.use_static_credentials"
        },
        {
          "new": "runner",
          "path": "connector.username"
        },
        {
          "new": true,
          "path": "delete_instances_on_shutdown"
        },
        {
          "new": "unix:///var/run/docker.sock",
          "path": "docker.host"
        },
        {
          "new": "alpine:3.20",
          "path": "docker.image"
        },
        {
          "new": false,
          "path": "docker.privileged"
        },
        {
          "new": [
            "if-not-present"
          ],
          "path": "docker.pull_policy"
        },
        {
          "new": [],
          "path": "docker.volumes"
        },
        {
          "new": 30,
          "path": "docker.wait_for_services_timeout"
        },
        {
          "new": "docker",
          "path": "executor"
        },
        {
          "new": "500ms",
          "path": "gitlab.check_interval"
        },
        {
          "new": 1,
          "path": "gitlab.request_concurrency"
        },
        {
          "new": "(sensitive value)",
          "path": "gitlab.token",
          "sensitive": true
        },
        {
          "new": "https://gitlab.example.com",
          "path": "gitlab.url"
        },
        {
          "new": 8,
          "path": "max_instances"
        },
        {
          "new": 0,
          "path": "max_use_count"
        },
        {
          "new": "arm-large",
          "path": "name"
        },
        {
          "new": 2,
          "path": "policy[0].idle_count"
        },
        {
          "new": "20m",
          "path": "policy[0].idle_time"
        },
        {
          "new": [
            "* * * * *"
          ],
          "path": "policy[0].periods"
        },
        {
          "new": true,
          "path": "policy[0].preemptive_mode"
        },
        {
          "new": 0,
          "path": "policy[0].scale_factor"
        },
        {
          "new": 0,
          "path": "policy[0].scale_factor_limit"
        },
        {
          "new": "UTC",
          "path": "policy[0].timezone"
        },
        {
          "new": "lt-0abc",
          "path": "provider.create.launch_template.id"
        },
        {
          "new": "$Latest",
          "path": "provider.create.launch_template.version"
        },
        {
          "new": [
            "subnet-a",
            "subnet-b"
          ],
          "path": "provider.create.subnets"
        },
        {
          "new": "eu-west-1",
          "path": "provider.region"
        },
        {
          "new": "aws",
          "path": "provider.type"
        },
        {
          "new": 8,
          "path": "scale_throttle.burst"
        },
        {
          "new": 100,
          "path": "scale_throttle.limit"
        },
        {
          "new": false,
          "path": "group.capacity_rebalance"
        },
        {
          "new": [],
          "path": "group.instance_types"
        },
        {
          "new": "lt-0abc",
          "path": "group.launch_template_id"
        },
        {
          "new": "$Latest",
          "path": "group.launch_template_version"
        },
        {
          "new": 8,
          "path": "group.max_size"
        },
        {
          "new": 0,
          "path": "group.min_size"
        },
        {
          "new": true,
          "path": "group.new_instances_protected_from_scale_in"
        },
        {
          "new": [
            "subnet-a",
            "subnet-b"
          ],
          "path": "group.subnets"
        },
        {
          "new": [
            "AZRebalance"
          ],
          "path": "group.suspended_processes"
        },
        {
          "new": {
            "runfleet:fleet": "arm-large",
            "runfleet:lifecycle": "owned"
          },
          "path": "group.tags"
        }
      ],
      "diagnostics": [],
      "fleet": "arm-large",
      "group": "runfleet-arm-large",
      "provider": "aws",
      "source": {
        "file": "fleets/arm-large.yaml",
        "line": 1
      },
      "unchanged": 0
    },
    {
      "action": "create",
      "capacity": {
        "current": 0,
        "increase": 0,
        "reason": "idle_count 0 slots / 1 per instance = 0 instances",
        "remove": [],
        "target": 0
      },
      "changes": [
        {
          "new": "auto",
          "path": "apply"
        },
        {
          "new": 1,
          "path": "capacity_per_instance"
        },
        {
          "new": "30s",
          "path": "connector.keepalive"
        },
        {
          "new": 22,
          "path": "connector.port"
        },
        {
          "new": "ssh",
          "path": "connector.protocol"
        },
        {
          "new": "10m",
          "path": "connector.timeout"
        },
        {
          "new": false,
          "path": "connector.use_external_addr"
        },
        {
          "new": false,
          "path": "connector.use_static_credentials"
        },
        {
          "new": "runner",
          "path": "connector.username"
        },
        {
          "new": true,
          "path": "delete_instances_on_shutdown"
        },
        {
          "new": "unix:///var/run/docker.sock",
          "path": "docker.host"
        },
        {
          "new": "alpine:3.20",
          "path": "docker.image"
        },
        {
          "new": false,
          "path": "docker.privileged"
        },
        {
          "new": [
            "if-not-present"
          ],
          "path": "docker.pull_policy"
        },
        {
          "new": [],
          "path": "docker.volumes"
        },
        {
          "new": 30,
          "path": "docker.wait_for_services_timeout"
        },
        {
          "new": "docker",
          "path": "executor"
        },
        {
          "new": "500ms",
          "path": "gitlab.check_interval"
        },
        {
          "new": 1,
          "path": "gitlab.request_concurrency"
        },
        {
          "new": "(sensitive value)",
          "path": "gitlab.token",
          "sensitive": true
        },
        {
          "new": "https://gitlab.example.com",
          "path": "gitlab.url"
        },
        {
          "new": 10,
          "path": "max_instances"
        },
        {
          "new": 0,
          "path": "max_use_count"
        },
        {
          "new": "drifted",
          "path": "name"
        },
        {
          "new": 0,
          "path": "policy[0].idle_count"
        },
        {
          "new": "20m",
          "path": "policy[0].idle_time"
        },
        {
          "new": [
            "* * * * *"
          ],
          "path": "policy[0].periods"
        },
        {
          "new": false,
          "path": "policy[0].preemptive_mode"
        },
        {
          "new": 0,
          "path": "policy[0].scale_factor"
        },
        {
          "new": 0,
          "path": "policy[0].scale_factor_limit"
        },
        {
          "new": "UTC",
          "path": "policy[0].timezone"
        },
        {
          "new": "local",
          "path": "provider.type"
        },
        {
          "new": 10,
          "path": "scale_throttle.burst"
        },
        {
          "new": 100,
          "path": "scale_throttle.limit"
        }
      ],
      "diagnostics": [
        {
          "code": "PROVIDER_UNREACHABLE",
          "hint": "check that the state directory is writable",
          "message": "cannot reach the local pool directory",
          "severity": "error"
        },
        {
          "code": "GROUP_MISSING",
          "hint": "this plan creates it again; find out what removed it if that was not intended",
          "message": "local group drifted of fleet \\"drifted\\" no longer exists (changed outside runfleet)",
          "severity": "warning"
        }
      ],
      "fleet": "drifted",
      "group": "drifted",
      "provider": "local",
      "source": {
        "file": "fleets/drifted.yaml",
        "line": 1
      },
      "unchanged": 0
    },
    {
      "action": "update",
      "capacity": {
        "current": 0,
        "increase": 0,
        "reason": "idle_count 0 slots / 1 per instance = 0 instances",
        "remove": [],
        "target": 0
      },
      "changes": [
        {
          "forcesReplacement": true,
          "new": "eu-central-1",
          "old": "eu-west-1",
          "path": "provider.region"
        }
      ],
      "diagnostics": [
        {
          "code": "SPOT_INTERRUPTION",
          "message": "instance i-0ddd received a spot interruption notice",
          "severity": "warning"
        },
        {
          "code": "GROUP_REPLACED",
          "hint": "instances of the old group are not moved: they stop getting jobs and must be drained and removed there",
          "message": "fleet \\"gpu\\" moves from aws group runfleet-gpu in eu-west-1 to aws group runfleet-gpu in eu-central-1",
          "severity": "warning"
        }
      ],
      "fleet": "gpu",
      "group": "runfleet-gpu",
      "provider": "aws",
      "source": {
        "file": "fleets/gpu.yaml",
        "line": 1
      },
      "unchanged": 41
    },
    {
      "action": "delete",
      "capacity": {
        "current": 2,
        "increase": 0,
        "reason": "fleet removed from configuration",
        "remove": [
          {
            "id": "10.0.0.5",
            "reason": "fleet_deleted"
          },
          {
            "id": "10.0.0.6:2222",
            "reason": "fleet_deleted"
          }
        ],
        "target": 0
      },
      "changes": [
        {
          "old": "auto",
          "path": "apply"
        },
        {
          "old": 1,
          "path": "capacity_per_instance"
        },
        {
          "old": "30s",
          "path": "connector.keepalive"
        },
        {
          "old": 22,
          "path": "connector.port"
        },
        {
          "old": "ssh",
          "path": "connector.protocol"
        },
        {
          "old": "10m",
          "path": "connector.timeout"
        },
        {
          "old": false,
          "path": "connector.use_external_addr"
        },
        {
          "old": false,
          "path": "connector.use_static_credentials"
        },
        {
          "old": "runner",
          "path": "connector.username"
        },
        {
          "old": true,
          "path": "delete_instances_on_shutdown"
        },
        {
          "old": "unix:///var/run/docker.sock",
          "path": "docker.host"
        },
        {
          "old": "alpine:3.20",
          "path": "docker.image"
        },
        {
          "old": false,
          "path": "docker.privileged"
        },
        {
          "old": [
            "if-not-present"
          ],
          "path": "docker.pull_policy"
        },
        {
          "old": [],
          "path": "docker.volumes"
        },
        {
          "old": 30,
          "path": "docker.wait_for_services_timeout"
        },
        {
          "old": "docker",
          "path": "executor"
        },
        {
          "old": "500ms",
          "path": "gitlab.check_interval"
        },
        {
          "old": 1,
          "path": "gitlab.request_concurrency"
        },
        {
          "old": "(sensitive value)",
          "path": "gitlab.token",
          "sensitive": true
        },
        {
          "old": "https://gitlab.example.com",
          "path": "gitlab.url"
        },
        {
          "old": 10,
          "path": "max_instances"
        },
        {
          "old": 0,
          "path": "max_use_count"
        },
        {
          "old": "legacy",
          "path": "name"
        },
        {
          "old": 0,
          "path": "policy[0].idle_count"
        },
        {
          "old": "20m",
          "path": "policy[0].idle_time"
        },
        {
          "old": [
            "* * * * *"
          ],
          "path": "policy[0].periods"
        },
        {
          "old": false,
          "path": "policy[0].preemptive_mode"
        },
        {
          "old": 0,
          "path": "policy[0].scale_factor"
        },
        {
          "old": 0,
          "path": "policy[0].scale_factor_limit"
        },
        {
          "old": "UTC",
          "path": "policy[0].timezone"
        },
        {
          "old": [
            "10.0.0.5",
            "10.0.0.6:2222"
          ],
          "path": "provider.hosts"
        },
        {
          "old": "static",
          "path": "provider.type"
        },
        {
          "old": 10,
          "path": "scale_throttle.burst"
        },
        {
          "old": 100,
          "path": "scale_throttle.limit"
        }
      ],
      "diagnostics": [],
      "fleet": "legacy",
      "group": "legacy",
      "provider": "static",
      "unchanged": 0
    },
    {
      "action": "update",
      "capacity": {
        "current": 3,
        "increase": 0,
        "reason": "demand 2 in use + 0 pending + idle 2 = 4 slots / 2 per instance = 2 (max_instances 10)",
        "remove": [
          {
            "detail": "idle 45m > idle_time 20m",
            "id": "i-0bbb",
            "reason": "idle_time"
          }
        ],
        "target": 2
      },
      "changes": [
        {
          "new": "alpine:3.20",
          "old": "alpine:3.19",
          "path": "docker.image"
        },
        {
          "new": [
            "/cache"
          ],
          "old": [],
          "path": "docker.volumes"
        },
        {
          "new": "(sensitive value)",
          "old": "(sensitive value)",
          "path": "gitlab.token",
          "sensitive": true
        },
        {
          "new": 2,
          "old": 0,
          "path": "policy[0].idle_count"
        },
        {
          "new": true,
          "old": false,
          "path": "policy[0].preemptive_mode"
        }
      ],
      "diagnostics": [],
      "fleet": "linux-small",
      "group": "linux-small",
      "provider": "local",
      "source": {
        "file": "fleets/linux-small.yaml",
        "line": 1
      },
      "unchanged": 29
    },
    {
      "action": "noop",
      "capacity": {
        "current": 0,
        "increase": 0,
        "reason": "idle_count 0 slots / 1 per instance = 0 instances",
        "remove": [],
        "target": 0
      },
      "changes": [],
      "diagnostics": [],
      "fleet": "quiet",
      "group": "quiet",
      "provider": "local",
      "source": {
        "file": "fleets/quiet.yaml",
        "line": 1
      },
      "unchanged": 34
    },
    {
      "action": "noop",
      "capacity": {
        "current": 1,
        "increase": 1,
        "reason": "idle_count 1 slot / 1 per instance = 1 instance",
        "remove": [
          {
            "detail": "used 1 of max_use_count 1",
            "id": "i-0eee",
            "reason": "max_use_count"
          }
        ],
        "target": 1
      },
      "changes": [],
      "diagnostics": [],
      "fleet": "scaled",
      "group": "scaled",
      "provider": "local",
      "source": {
        "file": "fleets/scaled.yaml",
        "line": 1
      },
      "unchanged": 34
    }
  ],
  "format": 1,
  "summary": {
    "add": 6,
    "change": 1,
    "destroy": 6
  }
}

`

exports[`test/plan/render.test.ts > TAP > json: no changes > must match snapshot 1`] = `
{
  "basis": {
    "fleets": "fleets-hash",
    "observed": "observed-hash"
  },
  "createdAt": "2026-03-01T12:00:00.000Z",
  "diagnostics": [],
  "errored": false,
  "fleets": [
    {
      "action": "noop",
      "capacity": {
        "current": 0,
        "increase": 0,
        "reason": "idle_count 0 slots / 1 per instance = 0 instances",
        "remove": [],
        "target": 0
      },
      "changes": [],
      "diagnostics": [],
      "fleet": "steady",
      "group": "steady",
      "provider": "local",
      "source": {
        "file": "fleets/steady.yaml",
        "line": 1
      },
      "unchanged": 34
    }
  ],
  "format": 1,
  "summary": {
    "add": 0,
    "change": 0,
    "destroy": 0
  }
}

`

exports[`test/plan/render.test.ts > TAP > markdown: every kind of change > must match snapshot 1`] = `
**Plan: 6 to add, 1 to change, 6 to destroy.**

<details><summary><code>fleet.arm-large</code> will be created</summary>

\`\`\`diff
   # fleet.arm-large will be created
+  + fleet "arm-large" {
+      + apply                                       = "auto"
+      + capacity_per_instance                       = 1
+      + connector.keepalive                         = "30s"
+      + connector.port                              = 22
+      + connector.protocol                          = "ssh"
+      + connector.timeout                           = "10m"
+      + connector.use_external_addr                 = false
+      + connector.use_static_credentials            = false
+      + connector.username                          = "runner"
+      + delete_instances_on_shutdown                = true
+      + docker.host                                 = "unix:///var/run/docker.sock"
+      + docker.image                                = "alpine:3.20"
+      + docker.privileged                           = false
+      + docker.pull_policy                          = ["if-not-present"]
+      + docker.volumes                              = []
+      + docker.wait_for_services_timeout            = 30
+      + executor                                    = "docker"
+      + gitlab.check_interval                       = "500ms"
+      + gitlab.request_concurrency                  = 1
+      + gitlab.token                                = (sensitive value)
+      + gitlab.url                                  = "https://gitlab.example.com"
+      + max_instances                               = 8
+      + max_use_count                               = 0
+      + name                                        = "arm-large"
+      + policy[0].idle_count                        = 2
+      + policy[0].idle_time                         = "20m"
+      + policy[0].periods                           = ["* * * * *"]
+      + policy[0].preemptive_mode                   = true
+      + policy[0].scale_factor                      = 0
+      + policy[0].scale_factor_limit                = 0
+      + policy[0].timezone                          = "UTC"
+      + provider.create.launch_template.id          = "lt-0abc"
+      + provider.create.launch_template.version     = "$Latest"
+      + provider.create.subnets                     = ["subnet-a", "subnet-b"]
+      + provider.region                             = "eu-west-1"
+      + provider.type                               = "aws"
+      + scale_throttle.burst                        = 8
+      + scale_throttle.limit                        = 100
+      + group.capacity_rebalance                    = false
+      + group.instance_types                        = []
+      + group.launch_template_id                    = "lt-0abc"
+      + group.launch_template_version               = "$Latest"
+      + group.max_size                              = 8
+      + group.min_size                              = 0
+      + group.new_instances_protected_from_scale_in = true
+      + group.subnets                               = ["subnet-a", "subnet-b"]
+      + group.suspended_processes                   = ["AZRebalance"]
+      + group.tags                                  = { runfleet:fleet = "arm-large", runfleet:lifecycle = "owned" }

!      ~ capacity {
!          ~ instances = 0 -> 2  # idle_count 2 slots / 1 per instance = 2 instances
+          + 2 new instances
         }
     }
\`\`\`

</details>

<details><summary><code>fleet.drifted</code> will be created</summary>

\`\`\`diff
   # fleet.drifted will be created
+  + fleet "drifted" {
+      + apply                            = "auto"
+      + capacity_per_instance            = 1
+      + connector.keepalive              = "30s"
+      + connector.port                   = 22
+      + connector.protocol               = "ssh"
+      + connector.timeout                = "10m"
+      + connector.use_external_addr      = false
+      + connector.use_static_credentials = false
+      + connector.username               = "runner"
+      + delete_instances_on_shutdown     = true
+      + docker.host                      = "unix:///var/run/docker.sock"
+      + docker.image                     = "alpine:3.20"
+      + docker.privileged                = false
+      + docker.pull_policy               = ["if-not-present"]
+      + docker.volumes                   = []
+      + docker.wait_for_services_timeout = 30
+      + executor                         = "docker"
+      + gitlab.check_interval            = "500ms"
+      + gitlab.request_concurrency       = 1
+      + gitlab.token                     = (sensitive value)
+      + gitlab.url                       = "https://gitlab.example.com"
+      + max_instances                    = 10
+      + max_use_count                    = 0
+      + name                             = "drifted"
+      + policy[0].idle_count             = 0
+      + policy[0].idle_time              = "20m"
+      + policy[0].periods                = ["* * * * *"]
+      + policy[0].preemptive_mode        = false
+      + policy[0].scale_factor           = 0
+      + policy[0].scale_factor_limit     = 0
+      + policy[0].timezone               = "UTC"
+      + provider.type                    = "local"
+      + scale_throttle.burst             = 10
+      + scale_throttle.limit             = 100
     }
\`\`\`

</details>

<details><summary><code>fleet.gpu</code> must be replaced</summary>

\`\`\`diff
   # fleet.gpu must be replaced
!-/+ fleet "gpu" {
         name            = "gpu"
         provider.type   = "aws"
!      ~ provider.region = "eu-west-1" -> "eu-central-1"  # forces replacement
         # (39 unchanged attributes hidden)
     }
\`\`\`

</details>

<details><summary><code>fleet.legacy</code> will be destroyed</summary>

\`\`\`diff
   # fleet.legacy will be destroyed
-  - fleet "legacy" {
-      - apply                            = "auto" -> null
-      - capacity_per_instance            = 1 -> null
-      - connector.keepalive              = "30s" -> null
-      - connector.port                   = 22 -> null
-      - connector.protocol               = "ssh" -> null
-      - connector.timeout                = "10m" -> null
-      - connector.use_external_addr      = false -> null
-      - connector.use_static_credentials = false -> null
-      - connector.username               = "runner" -> null
-      - delete_instances_on_shutdown     = true -> null
-      - docker.host                      = "unix:///var/run/docker.sock" -> null
-      - docker.image                     = "alpine:3.20" -> null
-      - docker.privileged                = false -> null
-      - docker.pull_policy               = ["if-not-present"] -> null
-      - docker.volumes                   = [] -> null
-      - docker.wait_for_services_timeout = 30 -> null
-      - executor                         = "docker" -> null
-      - gitlab.check_interval            = "500ms" -> null
-      - gitlab.request_concurrency       = 1 -> null
-      - gitlab.token                     = (sensitive value) -> null
-      - gitlab.url                       = "https://gitlab.example.com" -> null
-      - max_instances                    = 10 -> null
-      - max_use_count                    = 0 -> null
-      - name                             = "legacy" -> null
-      - policy[0].idle_count             = 0 -> null
-      - policy[0].idle_time              = "20m" -> null
-      - policy[0].periods                = ["* * * * *"] -> null
-      - policy[0].preemptive_mode        = false -> null
-      - policy[0].scale_factor           = 0 -> null
-      - policy[0].scale_factor_limit     = 0 -> null
-      - policy[0].timezone               = "UTC" -> null
-      - provider.hosts                   = ["10.0.0.5", "10.0.0.6:2222"] -> null
-      - provider.type                    = "static" -> null
-      - scale_throttle.burst             = 10 -> null
-      - scale_throttle.limit             = 100 -> null

-      - capacity {
!          ~ instances = 2 -> 0  # fleet removed from configuration
-          - instance "10.0.0.5"  # fleet_deleted
-          - instance "10.0.0.6:2222"  # fleet_deleted
         }
     }
\`\`\`

</details>

<details><summary><code>fleet.linux-small</code> will be updated in-place</summary>

\`\`\`diff
   # fleet.linux-small will be updated in-place
!  ~ fleet "linux-small" {
         name                      = "linux-small"
         provider.type             = "local"
!      ~ docker.image              = "alpine:3.19" -> "alpine:3.20"
!      ~ docker.volumes            = [] -> ["/cache"]
!      ~ gitlab.token              = (sensitive value)
!      ~ policy[0].idle_count      = 0 -> 2
!      ~ policy[0].preemptive_mode = false -> true
         # (27 unchanged attributes hidden)

!      ~ capacity {
!          ~ instances = 3 -> 2  # demand 2 in use + 0 pending + idle 2 = 4 slots / 2 per instance = 2 (max_instances 10)
-          - instance "i-0bbb"  # idle_time: idle 45m > idle_time 20m
         }
     }
\`\`\`

</details>

<details><summary><code>fleet.scaled</code> will be scaled</summary>

\`\`\`diff
   # fleet.scaled will be scaled
!  ~ fleet "scaled" {
         name          = "scaled"
         provider.type = "local"
         # (32 unchanged attributes hidden)

!      ~ capacity {
             instances = 1  # idle_count 1 slot / 1 per instance = 1 instance
+          + 1 new instance
-          - instance "i-0eee"  # max_use_count: used 1 of max_use_count 1
         }
     }
\`\`\`

</details>

**Diagnostics**

- **Error** \`PROVIDER_UNREACHABLE\` in \`fleet.drifted\` (fleets/drifted.yaml line 1): cannot reach the local pool directory. Hint: check that the state directory is writable
- **Warning** \`GROUP_MISSING\` in \`fleet.drifted\` (fleets/drifted.yaml line 1): local group drifted of fleet "drifted" no longer exists (changed outside runfleet). Hint: this plan creates it again; find out what removed it if that was not intended
- **Warning** \`SPOT_INTERRUPTION\` in \`fleet.gpu\` (fleets/gpu.yaml line 1): instance i-0ddd received a spot interruption notice.
- **Warning** \`GROUP_REPLACED\` in \`fleet.gpu\` (fleets/gpu.yaml line 1): fleet "gpu" moves from aws group runfleet-gpu in eu-west-1 to aws group runfleet-gpu in eu-central-1. Hint: instances of the old group are not moved: they stop getting jobs and must be drained and removed there

`

exports[`test/plan/render.test.ts > TAP > markdown: no changes > must match snapshot 1`] = `
**No changes. Your fleets match the configuration.**

`

exports[`test/plan/render.test.ts > TAP > text: every kind of change > must match snapshot 1`] = `
Fleet actions are indicated with the following symbols:
  + create
  ~ update in-place
  - destroy
-/+ destroy and then create replacement

runfleet will perform the following actions:

  # fleet.arm-large will be created
  + fleet "arm-large" {
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
      + name                                        = "arm-large"
      + policy[0].idle_count                        = 2
      + policy[0].idle_time                         = "20m"
      + policy[0].periods                           = ["* * * * *"]
      + policy[0].preemptive_mode                   = true
      + policy[0].scale_factor                      = 0
      + policy[0].scale_factor_limit                = 0
      + policy[0].timezone                          = "UTC"
      + provider.create.launch_template.id          = "lt-0abc"
      + provider.create.launch_template.version     = "$Latest"
      + provider.create.subnets                     = ["subnet-a", "subnet-b"]
      + provider.region                             = "eu-west-1"
      + provider.type                               = "aws"
      + scale_throttle.burst                        = 8
      + scale_throttle.limit                        = 100
      + group.capacity_rebalance                    = false
      + group.instance_types                        = []
      + group.launch_template_id                    = "lt-0abc"
      + group.launch_template_version               = "$Latest"
      + group.max_size                              = 8
      + group.min_size                              = 0
      + group.new_instances_protected_from_scale_in = true
      + group.subnets                               = ["subnet-a", "subnet-b"]
      + group.suspended_processes                   = ["AZRebalance"]
      + group.tags                                  = { runfleet:fleet = "arm-large", runfleet:lifecycle = "owned" }

      ~ capacity {
          ~ instances = 0 -> 2  # idle_count 2 slots / 1 per instance = 2 instances
          + 2 new instances
        }
    }

  # fleet.drifted will be created
  + fleet "drifted" {
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
      + max_instances                    = 10
      + max_use_count                    = 0
      + name                             = "drifted"
      + policy[0].idle_count             = 0
      + policy[0].idle_time              = "20m"
      + policy[0].periods                = ["* * * * *"]
      + policy[0].preemptive_mode        = false
      + policy[0].scale_factor           = 0
      + policy[0].scale_factor_limit     = 0
      + policy[0].timezone               = "UTC"
      + provider.type                    = "local"
      + scale_throttle.burst             = 10
      + scale_throttle.limit             = 100
    }

  # fleet.gpu must be replaced
-/+ fleet "gpu" {
        name            = "gpu"
        provider.type   = "aws"
      ~ provider.region = "eu-west-1" -> "eu-central-1"  # forces replacement
        # (39 unchanged attributes hidden)
    }

  # fleet.legacy will be destroyed
  - fleet "legacy" {
      - apply                            = "auto" -> null
      - capacity_per_instance            = 1 -> null
      - connector.keepalive              = "30s" -> null
      - connector.port                   = 22 -> null
      - connector.protocol               = "ssh" -> null
      - connector.timeout                = "10m" -> null
      - connector.use_external_addr      = false -> null
      - connector.use_static_credentials = false -> null
      - connector.username               = "runner" -> null
      - delete_instances_on_shutdown     = true -> null
      - docker.host                      = "unix:///var/run/docker.sock" -> null
      - docker.image                     = "alpine:3.20" -> null
      - docker.privileged                = false -> null
      - docker.pull_policy               = ["if-not-present"] -> null
      - docker.volumes                   = [] -> null
      - docker.wait_for_services_timeout = 30 -> null
      - executor                         = "docker" -> null
      - gitlab.check_interval            = "500ms" -> null
      - gitlab.request_concurrency       = 1 -> null
      - gitlab.token                     = (sensitive value) -> null
      - gitlab.url                       = "https://gitlab.example.com" -> null
      - max_instances                    = 10 -> null
      - max_use_count                    = 0 -> null
      - name                             = "legacy" -> null
      - policy[0].idle_count             = 0 -> null
      - policy[0].idle_time              = "20m" -> null
      - policy[0].periods                = ["* * * * *"] -> null
      - policy[0].preemptive_mode        = false -> null
      - policy[0].scale_factor           = 0 -> null
      - policy[0].scale_factor_limit     = 0 -> null
      - policy[0].timezone               = "UTC" -> null
      - provider.hosts                   = ["10.0.0.5", "10.0.0.6:2222"] -> null
      - provider.type                    = "static" -> null
      - scale_throttle.burst             = 10 -> null
      - scale_throttle.limit             = 100 -> null

      - capacity {
          ~ instances = 2 -> 0  # fleet removed from configuration
          - instance "10.0.0.5"  # fleet_deleted
          - instance "10.0.0.6:2222"  # fleet_deleted
        }
    }

  # fleet.linux-small will be updated in-place
  ~ fleet "linux-small" {
        name                      = "linux-small"
        provider.type             = "local"
      ~ docker.image              = "alpine:3.19" -> "alpine:3.20"
      ~ docker.volumes            = [] -> ["/cache"]
      ~ gitlab.token              = (sensitive value)
      ~ policy[0].idle_count      = 0 -> 2
      ~ policy[0].preemptive_mode = false -> true
        # (27 unchanged attributes hidden)

      ~ capacity {
          ~ instances = 3 -> 2  # demand 2 in use + 0 pending + idle 2 = 4 slots / 2 per instance = 2 (max_instances 10)
          - instance "i-0bbb"  # idle_time: idle 45m > idle_time 20m
        }
    }

  # fleet.scaled will be scaled
  ~ fleet "scaled" {
        name          = "scaled"
        provider.type = "local"
        # (32 unchanged attributes hidden)

      ~ capacity {
            instances = 1  # idle_count 1 slot / 1 per instance = 1 instance
          + 1 new instance
          - instance "i-0eee"  # max_use_count: used 1 of max_use_count 1
        }
    }

Plan: 6 to add, 1 to change, 6 to destroy.

╷
│ Error: cannot reach the local pool directory
│
│   fleet.drifted (fleets/drifted.yaml line 1), PROVIDER_UNREACHABLE
│
│ Hint: check that the state directory is writable
╵

╷
│ Warning: local group drifted of fleet "drifted" no longer exists (changed outside runfleet)
│
│   fleet.drifted (fleets/drifted.yaml line 1), GROUP_MISSING
│
│ Hint: this plan creates it again; find out what removed it if that was not intended
╵

╷
│ Warning: instance i-0ddd received a spot interruption notice
│
│   fleet.gpu (fleets/gpu.yaml line 1), SPOT_INTERRUPTION
╵

╷
│ Warning: fleet "gpu" moves from aws group runfleet-gpu in eu-west-1 to aws group runfleet-gpu in eu-central-1
│
│   fleet.gpu (fleets/gpu.yaml line 1), GROUP_REPLACED
│
│ Hint: instances of the old group are not moved: they stop getting jobs and must be drained and removed there
╵

`

exports[`test/plan/render.test.ts > TAP > text: no changes > must match snapshot 1`] = `
No changes. Your fleets match the configuration.

`
