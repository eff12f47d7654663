# One image for every MicroShop process: `microshop serve SERVICE`, `microshop migrate`, ...
#   docker build -t microshop:latest .
#   docker run --rm microshop:latest serve relay       (docker-compose.yml wires the whole stack)

# -- 1. the React app, built with Node (web/frontend/package.json wants Node >= 20.19) -----
FROM node:20-slim AS frontend
WORKDIR /frontend
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
COPY web/frontend/package.json web/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/frontend/ ./
RUN npm run build --silent

# -- 2. the services: Python, the packages, the built app ----------------------------------
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app \
    MICROSHOP_HOST=0.0.0.0

# The code stays root-owned and read-only for the user the services run as.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin microshop

WORKDIR /app

# Dependencies first, from setup.cfg alone, so editing code does not reinstall them.
COPY setup.cfg pyproject.toml ./
RUN python -c "import configparser; c = configparser.RawConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires'].strip())" > /tmp/requirements.txt \
 && pip install --quiet -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the code, run from /app (PYTHONPATH) as it is in a checkout: `microshop migrate` finds
# /app/migrations next to the packages. Byte-compiled now because the runtime user cannot
# write __pycache__ here.
COPY migrations/ migrations/
COPY eventstore/ eventstore/
COPY microshop/ microshop/
COPY services/ services/
COPY web/ web/
COPY --from=frontend /frontend/dist/ web/frontend/dist/
RUN python -m compileall -q microshop eventstore services web

USER microshop
ENTRYPOINT ["python", "-m", "microshop"]
CMD ["--help"]
