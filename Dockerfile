# One image for every Xiaopu service; the command picks the service:
#   docker run xiaopu catalog   |   docker run -p 8000:8000 xiaopu gateway
FROM python:3.11-slim

# fonts-wqy-microhei: the CJK font the share service draws posters with.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# the runtime pins only: requirements-dev.txt (pytest, hypothesis, linters) is never installed here
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY shared ./shared
COPY services ./services
COPY scripts ./scripts

ENV PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app:/app/services/catalog:/app/services/shop:/app/services/share:/app/services/orders:/app/services/payouts:/app/services/identity:/app/services/messages:/app/services/gateway \
    XIAOPU_DATA_DIR=/data \
    XIAOPU_STATE_DIR=/tmp/xiaopu

RUN useradd --create-home xiaopu && mkdir -p /data && chown xiaopu /data
USER xiaopu

# the service process' heartbeat file (shared/liveness.py) lives in XIAOPU_STATE_DIR; compose's
# healthcheck (python -m shared.healthcheck <service>) reads it: this container's own process.
# Prometheus metrics: METRICS_PORT (9100 in compose) for a service, /metrics on 8000 for the gateway.
EXPOSE 8000 9100
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "shared.run"]
CMD ["gateway"]
