# One image for every MicroShop process: `microshop serve SERVICE`, `microshop migrate`, ...
#   docker build -t microshop:latest .
#   docker run --rm microshop:latest serve relay       (docker-compose.yml wires the whole stack)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MICROSHOP_HOST=0.0.0.0

# The code stays root-owned and read-only for the user the services run as.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin microshop

WORKDIR /app

# Dependencies first, from setup.cfg alone, so editing code does not reinstall them.
COPY setup.cfg pyproject.toml ./
RUN python -c "import configparser; c = configparser.RawConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires'].strip())" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the code, installed editable: `microshop migrate` finds /app/migrations next to the
# packages. Byte-compiled now because the runtime user cannot write __pycache__ here.
COPY . .
RUN pip install --no-cache-dir -e /app \
 && python -m compileall -q microshop eventstore services web

USER microshop
ENTRYPOINT ["microshop"]
CMD ["--help"]
