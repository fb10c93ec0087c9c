"""What the test folders share: settings and sites, real services, processes, mail and web helpers.

config     free ports, Settings and LISTGATE_* environments for a test, a migrated site, wait_until
services   PostgreSQL, Redis and Chromium for the tests (fixtures; fail under CI=true when missing)
corpora    the real-mail corpora named by LISTGATE_TEST_CORPORA (skip locally, fail under CI=true)
sink       an aiosmtpd server that keeps what it receives (fixtures `sink`, `msink`)
gateway    an in-process gateway (`Env`, fixtures `env`, `make_env`), SMTP and archive helpers
processes  listgate's own processes (gateway, archiver, web, worker) as subprocesses
stack      a whole site (`listgate up`, or separate processes) and HTTP reads of it
shared_stack  one `listgate up` per test process for the journeys (fixtures `up_stack`, `sink`)
worker     a site with a real Celery worker, and mail as a client writes it
factories  posts stored through listgate.ingest
web        the web archive in Flask's test client (fixtures `app`, `client`, `sender`)
browser    the web archive on a socket and Debian's Chromium (fixture `browser`)
reliability  the short/long sizes, the figures for docs/reliability.md, sending MTAs
states     the words stored in the state columns, read past the enums
mailauth, forests, notmuch  DKIM keys and stub DNS; random reply forests; the notmuch comparison
"""
