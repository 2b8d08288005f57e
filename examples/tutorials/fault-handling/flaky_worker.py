"""Multiplies each job by 10; its first process crashes on job 3, a restarted one does not."""

from doradus import Input, Node

node = Node()
if node.is_restart():
    print(f"worker restarted (restart {node.restart_count()})")
else:
    print("worker started")
for event in node:
    if isinstance(event, Input):
        job = event.value[0].as_py()
        if job == 3 and not node.is_restart():
            raise RuntimeError(f"cannot process job {job}")
        node.send_output("result", [job * 10])
