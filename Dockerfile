# OHIF (served at /ohif/): scripts/ohif.sh in a Node stage, which needs nothing but npm, node and the base
# image's perl, gzip and findutils. Only the installed build goes on to the image.
FROM node:20-bookworm-slim AS ohif
WORKDIR /src
COPY scripts/ohif.sh scripts/
RUN OHIF_DIR=/ohif scripts/ohif.sh

FROM python:3.11-slim-bookworm

# STATIC_ROOT is in the image, outside the data volume: an upgraded image serves its own static files.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DICOMSVC_VAR_DIR=/var/lib/dicomsvc \
    STATIC_ROOT=/app/staticfiles OHIF_DIR=/opt/ohif
COPY --from=ohif /ohif /opt/ohif
RUN useradd --system --create-home --home-dir /app dicomsvc \
    && mkdir -p /var/lib/dicomsvc && chown dicomsvc /var/lib/dicomsvc
WORKDIR /app
# The whole build context, less what .dockerignore leaves out (tests, benches, local state): a new
# app is in the image without an edit here (tests/smoke/test_image_contents.py builds the wheel from
# exactly this context and imports every app and entry point from it).
COPY . ./
# collectstatic needs settings, not secrets: a throwaway key and a scratch var directory, so that no
# secret_key (nor any other file of the data directory) is baked into the image.
RUN pip install --no-cache-dir . \
    && SECRET_KEY=collectstatic-only DICOMSVC_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput -v 0 \
    && rm -rf /tmp/build-var
USER dicomsvc
EXPOSE 8000 11112
CMD ["gunicorn", "-c", "python:dicomsvc.gunicorn_conf", "dicomsvc.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"]
