# A non-root image that serves Telegram and/or WhatsApp, with its SQLite file (or BOT_DATABASE_URL
# for PostgreSQL: the postgres extra is installed) and models on a
# volume.
#   docker build -t helpbot .
#   docker run -e TELEGRAM_BOT_TOKEN=... -v helpbot-data:/data helpbot
# WhatsApp's webhook: -e WHATSAPP_WEBHOOK_LISTEN=0.0.0.0 -p 127.0.0.1:8444:8444, behind HTTPS.
# tests/test_install.py does these steps without Docker (no engine runs on the project's
# machines): pip install of the same copied files, then the bot as an unprivileged user from
# a folder holding only the data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOT_DB_PATH=/data/bot.sqlite3 \
    BOT_MODELS_DIR=/data/models

RUN groupadd --system bot \
    && useradd --system --gid bot --home-dir /data --no-create-home --shell /usr/sbin/nologin bot

# The flows and catalogs are installed inside the package (bot/_shipped links to flows/ and
# locales/, and the build copies them), so the source is not kept. A charity's own edited
# copies go on a volume, named by BOT_FLOWS_DIR and BOT_LOCALES_DIR.
COPY pyproject.toml README.md /src/
COPY bot /src/bot
COPY flows /src/flows
COPY locales /src/locales
COPY services /src/services
RUN pip install "/src[postgres]" && rm -rf /src

RUN mkdir -p /data && chown bot:bot /data
VOLUME ["/data"]
WORKDIR /data
USER bot

# Refuse to build on broken flows rather than serve them.
RUN python -m bot validate

# Exec form: python is PID 1 and receives `docker stop`'s SIGTERM itself (no shell between);
# the bot's own handler stops it gracefully. Arguments after the image name replace `run`:
#   docker run --rm -it -v helpbot-data:/data helpbot chat
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
