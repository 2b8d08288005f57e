#!/bin/sh
# An executable node for the descriptor tests.
exit 0
