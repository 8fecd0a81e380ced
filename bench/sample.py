# Copy of /work/shared/bench/sample.py (the peer benchmarks' sample message), so that the
# benchmarks in this tree are self-contained. Keep the two identical.
# Shared sample content for peer benchmarks: a realistic bilingual multipart message.
TEXT = ("您好,这是一封通过程序自动发送的月度报告通知邮件。\n"
        "Hello, this is the monthly report notification sent by a program.\n") * 20
HTML = ("<html><body><div style=\"font-family: Arial, sans-serif; color: #333;\">"
        + "<p>您好,这是一封通过程序自动发送的<b>月度报告</b>通知邮件。</p>"
        "<p>Hello, this is the <i>monthly report</i> notification.</p>" * 20
        + "</div></body></html>")
SUBJECT = "月度报告通知 — monthly report"
FROM = "sender@example.com"
TO = "receiver@example.com"
