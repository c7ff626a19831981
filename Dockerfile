# coldchain's image: the ingest and rules services of deploy/docker-compose.yml (any role, in fact:
# the entrypoint is the `coldchain` command).
#
# The install step is CI's (scripts/bootstrap.sh): pip, upgraded, installs the package with the
# versions pinned in constraints.txt. tests/test_deploy.py fails when the two drift apart.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY coldchain ./coldchain
RUN python -m pip install -q --upgrade pip \
 && python -m pip install -q -c constraints.txt .

# Run as an unprivileged user; its state (spools, the rules snapshot) lives in /var/lib/coldchain.
RUN groupadd --system --gid 10001 coldchain \
 && useradd --system --uid 10001 --gid coldchain --home-dir /var/lib/coldchain --shell /usr/sbin/nologin coldchain \
 && install -d -o coldchain -g coldchain -m 0750 /var/lib/coldchain \
 && install -d -m 0755 /etc/coldchain
USER coldchain
WORKDIR /var/lib/coldchain
VOLUME ["/var/lib/coldchain"]
EXPOSE 8080

ENTRYPOINT ["coldchain"]
CMD ["run", "--config", "/etc/coldchain/coldchain.toml"]
