"""The daemon's bounce check watches the inbox with IMAP IDLE (RFC 2177) on a real Dovecot:
a bounce that arrives while the daemon runs suppresses its address within seconds, long
before the next bounce_check interval (an hour here).
"""
import json
import os

import harness
import servers
from harness import test
import test_verp as tv


@test(timeout=90)
def a_bounce_arriving_between_checks_is_read_at_once_through_idle():
    dc = tv.dovecot_server()
    kf = tv.keyfile()
    with servers.AioSmtpd() as smtp:
        env, spool = tv.config(smtp.port, "verp = yes\nverp_key_file = %s\nbounce_check = 1h"
                               % kf, mailbox=True)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "idle@far.test",
                                      "--subject", "idle-1", "--text", "x\n", "--spool", spool,
                                      env=env)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        log = os.path.join(harness.tmpdir("idlelog"), "log.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--spool", spool, "--log-file",
                              log], env=env)

        def events():
            if not os.path.exists(log):
                return []
            with open(log) as f:
                return [json.loads(x) for x in f if x.strip()]

        def suppressed():
            rc, out, err = harness.pigeon("suppress", "list", "--account", "test", "--spool",
                                          spool, env=env)
            return b"idle@far.test" in out

        try:
            # The check at start has run (and found nothing); the next is an hour away.
            harness.wait_for(lambda: [e for e in events() if e.get("event") == "bounces"],
                             timeout=20, what="the first bounce check")
            assert not suppressed()
            dc.deliver(tv.bounce_naming_nobody(m.mail_from))
            harness.wait_for(suppressed, timeout=20, what="the bounce read through IDLE")
        finally:
            harness.stop(proc)
        checks = [e for e in events() if e.get("event") == "bounces"]
        assert checks[-1].get("trigger") == "idle" and checks[-1].get("suppressed") == 1, checks


if __name__ == "__main__":
    # Only this file's test: importing test_verp registered its tests too.
    harness.run([a_bounce_arriving_between_checks_is_read_at_once_through_idle])
