#!/bin/sh
# Deliberately NOT executable: the descriptor must ask for chmod +x.
exit 0
