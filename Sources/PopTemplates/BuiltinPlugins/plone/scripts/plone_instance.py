"""Create or update the Zope WSGI instance that runs Plone, in the pop instance folder.

Run by the `plone` template's setup step with the virtual environment's interpreter. The configuration files are
rewritten on every run, so a changed option (such as the port) takes effect when the service restarts. The initial
admin user is created only for a new database: Zope reads the `inituser` file on its first start, stores the user with
a salted hash, and deletes the file.

The admin password comes from the POP_ADMIN_PASSWORD environment variable, never from the command line, where any
local user could read it. When it is empty, a random password is generated and written to `admin-password` in the
instance folder, readable only by its owner.
"""

import argparse
import os
import secrets
import sys

ZOPE_CONF = """\
%define INSTANCE {instance}
instancehome $INSTANCE

<zodb_db main>
  <filestorage>
    path $INSTANCE/var/Data.fs
  </filestorage>
  mount-point /
</zodb_db>

<environment>
  CHAMELEON_CACHE $INSTANCE/var/cache
</environment>

<dos_protection>
</dos_protection>
"""

ZOPE_INI = """\
[app:zope]
use = egg:Zope#main
zope_conf = %(here)s/zope.conf

[server:main]
use = egg:waitress#main
host = {address}
port = {port}
threads = 4

[filter:translogger]
use = egg:Paste#translogger
setup_console_handler = False

[pipeline:main]
pipeline =
    egg:Zope#httpexceptions
    translogger
    zope

[loggers]
keys = root, waitress, wsgi

[handlers]
keys = console

[formatters]
keys = generic, message

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
datefmt = %Y-%m-%d %H:%M:%S

[formatter_message]
format = %(message)s

[logger_root]
level = INFO
handlers = console

[logger_waitress]
level = INFO
handlers = console
qualname = waitress
propagate = 0

[logger_wsgi]
level = INFO
handlers = console
qualname = wsgi
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
"""

SITE_ZCML = """\
<configure
    xmlns="http://namespaces.zope.org/zope"
    xmlns:meta="http://namespaces.zope.org/meta"
    xmlns:five="http://namespaces.zope.org/five">

  <include package="Zope2.App" />
  <include files="package-includes/*-meta.zcml" />
  <five:loadProducts file="meta.zcml"/>
  <include files="package-includes/*-configure.zcml" />
  <five:loadProducts />
  <includeOverrides files="package-includes/*-overrides.zcml" />
  <five:loadProductsOverrides />
</configure>
"""


def write(path, text, mode=0o644):
    """Write `text` to `path` atomically with the given mode."""
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", required=True, help="the instance folder")
    parser.add_argument("--address", default="0.0.0.0", help="the address to listen on")
    parser.add_argument("--port", type=int, required=True, help="the TCP port to listen on")
    parser.add_argument("--admin-user", required=True, help="the initial admin user's name")
    options = parser.parse_args()

    if not 1 <= options.port <= 65535:
        parser.error("--port must be 1-65535")
    if not options.admin_user or ":" in options.admin_user or "\n" in options.admin_user:
        parser.error("--admin-user must be non-empty and contain no ':' or line break")
    for forbidden in ("\n", "\r", " ", "%", "$"):
        if forbidden in options.address:
            parser.error("--address must be a plain host name or IP address")

    instance = os.path.abspath(options.instance)
    for folder in ("etc", "var", os.path.join("var", "cache")):
        os.makedirs(os.path.join(instance, folder), exist_ok=True)
    write(os.path.join(instance, "etc", "zope.conf"), ZOPE_CONF.format(instance=instance))
    write(os.path.join(instance, "etc", "zope.ini"), ZOPE_INI.replace("{address}", options.address)
          .replace("{port}", str(options.port)))
    write(os.path.join(instance, "etc", "site.zcml"), SITE_ZCML)

    if os.path.exists(os.path.join(instance, "var", "Data.fs")):
        print("Instance configuration updated in %s (port %d); the database already exists, so the admin user is "
              "left as it is." % (instance, options.port))
        return 0

    password = os.environ.get("POP_ADMIN_PASSWORD", "")
    if not password:
        password = secrets.token_urlsafe(15)
        write(os.path.join(instance, "admin-password"), password + "\n", mode=0o600)
        print("Generated a password for the admin user %r; it is in %s (readable only by its owner)."
              % (options.admin_user, os.path.join(instance, "admin-password")))
    if "\n" in password:
        print("The admin password must not contain a line break.", file=sys.stderr)
        return 2

    from AuthEncoding import AuthEncoding

    hashed = AuthEncoding.pw_encrypt(password.encode("utf-8"), "SSHA")
    if isinstance(hashed, bytes):
        hashed = hashed.decode("ascii")
    write(os.path.join(instance, "inituser"), "%s:%s\n" % (options.admin_user, hashed), mode=0o600)
    print("Instance created in %s (port %d, admin user %r)." % (instance, options.port, options.admin_user))
    return 0


if __name__ == "__main__":
    sys.exit(main())
