"""Reads frames without a copy, with asyncio; counts heartbeats."""

import asyncio

from doradus import Input, InputClosed, Node


async def main() -> None:
    node = Node()
    beats = 0
    async for event in node:
        match event:
            case Input(id="frame", value=value, metadata=meta):
                pixels = value.to_numpy(zero_copy_only=True)  # read-only view of the shared memory
                image = pixels.reshape(meta["height"], meta["width"])
                sent_at = meta["timestamp"]  # always there: the send time, a UTC datetime
                first = image[0, 0]
                zone = sent_at.tzname()
                print(f"frame {meta['number']}: {image.shape}, first pixel {first}, sent {zone}")
            case Input(id="heartbeat"):
                beats += 1
            case InputClosed(id=input_id):
                print(f"{input_id} closed")
    print(f"heartbeats received: {'some' if beats else 'none'}")


asyncio.run(main())
