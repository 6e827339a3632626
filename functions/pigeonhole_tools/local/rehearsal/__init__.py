"""Deploy rehearsal: the synthesized CloudFormation template, deployed into moto's CloudFormation.

`make up` builds the local system from `local/emulator.py`; `cdk deploy` builds it from the CDK
constructs. This deploys the real template (synthesized offline, bundling skipped) into a moto
server on loopback, reads back what moto created with ordinary describe calls, compares it with
what the local runtime provisions, and drives the real classifier handler with the deployed
function's own environment. The template adjustments moto needs live in `template.py`, in one list.

Needs the `dev` extra (aws-cdk-lib, Node) for synthesis; nothing here can reach AWS: every client
is bound to a loopback endpoint with fake credentials.

Modules, in the order a rehearsal runs: `template` (the rewrites, the skipped types, the moto pin),
`stack` (synthesis, bootstrap, create/update/delete), `compare` (both systems read back and
compared), `drive` (the real handler with the deployed environment), `run` (all of it, and the report).
"""
