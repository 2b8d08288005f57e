"""Sends 3 frames of 1 MiB through shared memory, with metadata, and heartbeats from a thread."""

import threading

from doradus import Input, Node, Stop

WIDTH, HEIGHT = 1024, 1024
node = Node()
done = threading.Event()


def heartbeat() -> None:
    beats = 0
    while not done.wait(0.02):
        beats += 1
        node.send_output("heartbeat", [beats])  # send_output is thread-safe


threading.Thread(target=heartbeat, daemon=True).start()

frames = 0
for event in node:
    match event:
        case Input(id="tick"):
            frames += 1
            frame = node.allocate(WIDTH * HEIGHT)  # writable numpy array in shared memory
            frame.reshape(HEIGHT, WIDTH)[:] = frames  # fill it in place
            # Do not write into `frame` after this: the receiver reads this same memory.
            node.send_output("frame", frame, {"width": WIDTH, "height": HEIGHT, "number": frames})
            if frames == 3:
                break
        case Stop():
            break
done.set()
print(f"sent {frames} frames")
