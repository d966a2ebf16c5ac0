#!/bin/sh
# The service's own image build step. This file is yours: `copier update` never touches it.
# The Dockerfile runs it as root in the final image, after the system packages (image/system-packages.txt),
# the app's Python environment (`python` is on PATH) and the files of image/files/ (copied to /srv/), and
# before the app itself. The service runs as uid 10001: leave what it reads world-readable. For example:
#   python -m my_tool download tiny-model /srv/models/tiny
set -eu
