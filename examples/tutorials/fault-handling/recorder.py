"""Says whether it is a restarted process, then records counts."""

from doradus import Input, Node

node = Node()
if node.is_restart():
    print(f"recorder restarted (restart {node.restart_count()}): resuming")
else:
    print("recorder started")
for event in node:
    if isinstance(event, Input):
        last = event.value[0].as_py()
