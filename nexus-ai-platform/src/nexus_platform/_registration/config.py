"""The registration's settings checked together at start-up, and the TLS context of its etcd client.

Each problem is one line naming its variable; a key's or password's value never appears.
"""

import ssl

from nexus_platform._config.settings import ConfigError, PlatformSettings

__all__ = ["check_registration", "etcd_credentials", "etcd_tls_context"]


def _problems(settings: PlatformSettings) -> list[str]:
    problems = []
    if settings.etcd_username and not settings.etcd_password:
        problems.append("ETCD_PASSWORD: required when ETCD_USERNAME is set")
    if settings.etcd_password and not settings.etcd_username:
        problems.append("ETCD_USERNAME: required when ETCD_PASSWORD is set (the password's user)")
    if settings.etcd_cert_file and not settings.etcd_key_file:
        problems.append("ETCD_KEY_FILE: required when ETCD_CERT_FILE is set (the certificate's private key)")
    if settings.etcd_key_file and not settings.etcd_cert_file:
        problems.append("ETCD_CERT_FILE: required when ETCD_KEY_FILE is set (the key's certificate)")
    endpoints = [url.strip() for url in settings.etcd_url.split(",") if url.strip()]
    tls_files = [
        name
        for name, value in (
            ("ETCD_CA_FILE", settings.etcd_ca_file),
            ("ETCD_CERT_FILE", settings.etcd_cert_file),
        )
        if value
    ]
    if tls_files and not any(url.startswith("https://") for url in endpoints):
        problems.append(f"{tls_files[0]}: set, but no ETCD_URL endpoint starts with https://")
    if settings.etcd_traefik_root and not settings.etcd_traefik_entrypoints:
        problems.append(
            "ETCD_TRAEFIK_ENTRYPOINTS: required when ETCD_TRAEFIK_ROOT is set (the Traefik entry points the "
            "routes attach to; without them Traefik serves them on every entry point)"
        )
    if not settings.etcd_traefik_root:
        problems += [
            f"{name}: has no effect without ETCD_TRAEFIK_ROOT"
            for name, value in (
                ("ETCD_TRAEFIK_ENTRYPOINTS", settings.etcd_traefik_entrypoints),
                ("ETCD_TRAEFIK_MIDDLEWARES", settings.etcd_traefik_middlewares),
                ("ETCD_TRAEFIK_TLS", settings.etcd_traefik_tls),
            )
            if value
        ]
    return problems


def etcd_tls_context(settings: PlatformSettings) -> ssl.SSLContext | None:
    """The etcd client's TLS context: ETCD_CA_FILE (else OpenSSL's default trust store), and the client
    certificate of ETCD_CERT_FILE/ETCD_KEY_FILE; None without either (httpx's default verification);
    ConfigError, one line per variable, when a file is unreadable or invalid."""
    if not (settings.etcd_ca_file or settings.etcd_cert_file):
        return None
    context = ssl.create_default_context()
    problems = []
    if settings.etcd_ca_file:
        try:
            context.load_verify_locations(cafile=settings.etcd_ca_file)
        except ssl.SSLError:  # before OSError, its base class
            problems.append(f"ETCD_CA_FILE: {settings.etcd_ca_file} holds no PEM certificate")
        except OSError as error:
            problems.append(f"ETCD_CA_FILE: cannot read {settings.etcd_ca_file}: {error.strerror}")
    if settings.etcd_cert_file and settings.etcd_key_file:
        try:
            # OpenSSL would otherwise ask for an encrypted key's password on the terminal, and wait
            context.load_cert_chain(settings.etcd_cert_file, settings.etcd_key_file, lambda: b"")
        except ssl.SSLError:  # before OSError, its base class
            problems.append(
                "ETCD_KEY_FILE: not the unencrypted PEM private key of the certificate in ETCD_CERT_FILE"
            )
        except OSError as error:
            problems.append(f"ETCD_CERT_FILE: cannot read it or ETCD_KEY_FILE: {error.strerror}")
    if problems:
        raise ConfigError("; ".join(problems))
    return context


def etcd_credentials(settings: PlatformSettings) -> tuple[str, str] | None:
    """(user, password) when the registration authenticates, else None."""
    return (settings.etcd_username, settings.etcd_password) if settings.etcd_username else None


def check_registration(settings: PlatformSettings) -> None:
    """ConfigError when the registration's settings do not go together, or its TLS files cannot be used."""
    if problems := _problems(settings):
        raise ConfigError("; ".join(problems))
    if settings.etcd_url:
        etcd_tls_context(settings)
