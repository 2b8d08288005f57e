# Doradus in a container: runs one dataflow with `doradus run` and exits when it finishes.
#   docker build -t doradus .
#   docker run --rm doradus                                   # the bundled hello-world dataflow
#   docker run --rm -v "$PWD/my-flow:/home/doradus/dataflow" doradus   # yours: dataflow.yml inside
# Checked by tests/docs/test_dockerfile.py: the CMD below is run outside a container on the same
# files, and this file is linted (pinned base, non-root user, no remote ADD, no pip cache).

# An exact tag: Python 3.11.7 (the version the lock was made with) on Debian 12, glibc x86_64.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/doradus

# Dependencies first, from the lock with hashes (every extra, as `make demo` installs them),
# so that editing the sources does not reinstall them.
COPY requirements/lock.txt requirements/lock.txt
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements/lock.txt

COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin doradus

# The dataflow to run: its folder becomes the working directory (nodes run from there and the
# run's logs go to out/ inside it). Mount your own folder over it to run yours.
COPY --chown=doradus:doradus examples/hello-world /home/doradus/dataflow

USER doradus
WORKDIR /home/doradus/dataflow

# No HEALTHCHECK: the container runs one dataflow to its end, and its exit code says how it
# went (0 finished, 1 failed). A long-lived `doradus up` setup would probe the coordinator.
HEALTHCHECK NONE

ENTRYPOINT ["doradus"]
CMD ["run", "dataflow.yml", "--no-color"]
