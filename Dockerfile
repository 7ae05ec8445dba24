FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DICOMSVC_VAR_DIR=/var/lib/dicomsvc
RUN useradd --system --create-home --home-dir /app dicomsvc \
    && mkdir -p /var/lib/dicomsvc && chown dicomsvc /var/lib/dicomsvc
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dicomsvc ./dicomsvc
COPY core ./core
COPY worklist ./worklist
COPY exams ./exams
COPY callbacks ./callbacks
COPY viewer ./viewer
COPY dimse ./dimse
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir . && python manage.py collectstatic --noinput -v 0
USER dicomsvc
EXPOSE 8000 11112
CMD ["gunicorn", "-c", "python:dicomsvc.gunicorn_conf", "dicomsvc.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"]
