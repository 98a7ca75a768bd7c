#!/usr/bin/env node
// The chat services' own renderers, for notirouter's conformance tests.
//
// Reads one JSON request per line on stdin, {"kind": ..., "input": ...}, and writes one JSON
// answer per line on stdout, {"html": ...} (plus "errors" for Adaptive Cards), in order. One
// process serves a whole test session (tests/service_renderers.py starts it once).
//
// kinds:
//   teams              an Adaptive Card, parsed by the official SDK with validation on and
//                      rendered to HTML, markdown-it as its Markdown processor
//   mattermost         Mattermost Markdown (post text, attachment text, field values)
//   mattermost-plain   text Mattermost shows without Markdown (field titles)
//   mattermost-title   an attachment title without title_link (links only, no autolinks)
//   discord            Discord Markdown (content, embed description, title and fields)
"use strict";

const readline = require("readline");
const { JSDOM } = require("jsdom");

// --- a DOM for the Adaptive Cards SDK --------------------------------------------------------
const dom = new JSDOM("<!doctype html><html><head></head><body></body></html>", { url: "https://teams.invalid/" });
// The SDK reaches for browser globals (document, HTMLButtonElement, ...): give it jsdom's.
global.window = dom.window;
for (const name of Object.getOwnPropertyNames(dom.window)) {
    if (!(name in global) && !["localStorage", "sessionStorage"].includes(name)) {
        global[name] = dom.window[name];
    }
}
// jsdom has no layout, so no innerText: the SDK sets plain text through it.
Object.defineProperty(dom.window.HTMLElement.prototype, "innerText", {
    configurable: true,
    get() { return this.textContent; },
    set(value) { this.textContent = value; },
});

// The package's lib/ is ES modules without file extensions, which Node cannot load: its UMD
// bundle is the same SDK.
const AdaptiveCards = require("adaptivecards/dist/adaptivecards.js");
const MarkdownIt = require("markdown-it");
const marked = require("marked");
const discord = require("discord-markdown");

// --- Teams ------------------------------------------------------------------------------------
// linkify on (the SDK's own fallback, markdownit(), has it off; Teams' clients autolink URLs),
// fuzzy links off as in tests/test_chat_escaping.py: a bare "host.example" stays text on purpose.
const teamsMarkdown = new MarkdownIt({ linkify: true });
teamsMarkdown.linkify.set({ fuzzyLink: false });
AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
    result.outputHtml = teamsMarkdown.render(text);
    result.didProcess = true;
};

function renderTeams(card) {
    const adaptive = new AdaptiveCards.AdaptiveCard();
    const context = new AdaptiveCards.SerializationContext();
    adaptive.parse(card, context);
    const errors = [];
    for (let i = 0; i < context.eventCount; i++) {
        const event = context.getEventAt(i);
        errors.push(`parse: ${event.message}`);
    }
    for (const event of adaptive.validateProperties().validationEvents) {
        errors.push(`validate: ${event.message}`);
    }
    const element = adaptive.render();
    return { html: element ? element.outerHTML : "", errors };
}

// --- Mattermost -------------------------------------------------------------------------------
// marked 0.3.6 (the release the fork's inline lexer follows) set up as the web app sets up
// its fork (webapp/channels/src/utils/markdown): sanitize, gfm, tables, no mangle, breaks off;
// the fork's inline escapes, autolinks, text rule, URL matcher and scheme filter; links and
// images as the web app's Renderer writes them; and what doFormatText does to each run of
// text (mentions, ~channels, #hashtags, e-mail links, emoticons).
const gfm = marked.InlineLexer.rules.gfm;
// The fork honours a backslash only before \ ` * { } [ ] ( ) # + - . ! _ > | ~ (and "\\" only
// when no word character follows); 0.3.6 also takes "\\" before a letter.
gfm.escape = /^\\([\\`*{}\[\]()#+\-.!_>|~]|\\(?!\w))/;
// The fork's autolinks: <scheme:/...>, <user@host> and <www.host>.
gfm.autolink = /^<((?:[^ >]+(@|:\/)|www\d{0,3}\.)[^ >]+)>/;
// The fork's text run also stops before a URL scheme, "www.", "$" and "_" at a word boundary,
// where its URL matcher may start.
gfm.text = /^(`+|[^`])(?:[\s\S]*?(?:(?=[\\<!\[`*~]|\b[a-z][a-z0-9.+-]{1,31}:|\bwww\d{0,3}\.|\B\$|\b_|$)|[^ ](?= {2,}\n))|(?= {2,}\n))/;
// The web app's URL matcher (GFM autolinks): a scheme, "www." or "host.tld/", up to white
// space or "<", without trailing punctuation; only schemes the server autolinks.
const AUTOLINKED_SCHEMES = ["http", "https", "ftp", "mailto", "tel", "mattermost"];
const URL_PREFIX = /^(?:[A-Za-z][A-Za-z\d.+-]*:(?:\/{1,3}|[\p{L}\d%])|www\d{0,3}\.|[\p{L}\d.-]+[.]\p{L}{2,4}\/)/u;
gfm.url = {
    exec(src) {
        const prefix = URL_PREFIX.exec(src);
        if (!prefix) return null;
        let end = prefix[0].length;
        while (end < src.length && !/[\s<]/.test(src[end])) end++;
        let url = src.slice(0, end);
        while (/[?!.,:*_~'"]$/.test(url) || (/\)$/.test(url) && (url.match(/\)/g) || []).length > (url.match(/\(/g) || []).length)) {
            url = url.slice(0, -1);
        }
        const scheme = /^([A-Za-z][A-Za-z\d.+-]*):/.exec(url);
        if (!url || (scheme && !AUTOLINKED_SCHEMES.includes(scheme[1].toLowerCase()))) return null;
        return Object.assign([url, url], { index: 0, input: src });
    },
};

const MENTION = /(^|[^\w])(@[a-z0-9.\-_]+)/gi;
const CHANNEL = /(^|[^\w])(~[a-z0-9.\-_]+)/gi;
const HASHTAG = /(^|[^\p{L}\d_])(#\p{L}[\p{L}\d\-_.]*[\p{L}\d])/gu;
const EMAIL = /(^|[^\p{L}\d])([\p{L}\p{Nd}!#$%&'*+\-/=?^_`{|}~.]+@[\p{L}\d.\-]+[.]\p{L}{2,5})(?=$|[^\p{L}])/gu;
const NAMED_EMOJI = /(^|[^\w])(:[\w+-]+:)(?!\w)/g;
const EMOTICON = /(^|\s)(:-?\)|;-?\)|:-?D|:-?P|:-?\(|:-?\/|:-?\||:o|&lt;3|&lt;\/3)(?=$|\s)/gi;
const XD = /(^|\b)(x-d)(?=$|\b)/gi;

function formatText(html, { mentions = true } = {}) {
    // Placeholders keep one rule from matching inside what another produced, as its tokens do.
    const tokens = [];
    const keep = (value) => `\u0000${tokens.push(value) - 1}\u0000`;
    let out = html;
    if (mentions) {
        out = out.replace(MENTION, (_, pre, name) => pre + keep(`<span class="mention" data-mention="${name.slice(1)}">${name}</span>`));
    }
    out = out.replace(CHANNEL, (_, pre, name) => pre + keep(`<a class="mention-link" href="/team/channels/${name.slice(1)}">${name}</a>`));
    out = out.replace(EMAIL, (_, pre, email) => pre + keep(`<a class="theme" href="mailto:${email}">${email}</a>`));
    out = out.replace(HASHTAG, (_, pre, tag) => pre + keep(`<a class="mention-link" data-hashtag="${tag}">${tag}</a>`));
    out = out.replace(NAMED_EMOJI, (_, pre, name) => pre + keep(`<span data-emoticon="${name}">${name}</span>`));
    out = out.replace(EMOTICON, (_, pre, face) => pre + keep(`<span data-emoticon="${face}">${face}</span>`));
    out = out.replace(XD, (_, pre, face) => pre + keep(`<span data-emoticon="${face}">${face}</span>`));
    return out.replace(/\u0000(\d+)\u0000/g, (_, i) => tokens[Number(i)]);
}

function unsafeHref(href) {
    const decoded = href.replace(/&#(x?)([0-9a-f]+);?/gi, (_, x, n) => String.fromCharCode(parseInt(n, x ? 16 : 10)));
    return /^\s*(javascript|vbscript|data):/i.test(decoded.replace(/[^\w:]/g, ""));
}

class MattermostRenderer extends marked.Renderer {
    link(href, title, text) {
        if (unsafeHref(href)) return text;
        const target = href.startsWith("/") || /^[A-Za-z][A-Za-z\d.+-]*:/.test(href) ? href : `http://${href}`;
        return `<a class="theme markdown__link" href="${target}" rel="noreferrer" target="_blank">${text.replace(/<\/?a[^>]*>/g, "")}</a>`;
    }
    image(href, title, text) {
        return `<img src="${href}" alt="${text}" class="markdown-inline-img">`;
    }
}

// The attachment title without a title_link: links only, every other construct as its text,
// and no autolinks (autolinkedUrlSchemes: []).
class LinkOnlyRenderer extends MattermostRenderer {
    strong(text) { return text; }
    em(text) { return text; }
    del(text) { return text; }
    codespan(text) { return text; }
    br() { return " "; }
    image(href, title, text) { return text; }
    heading(text) { return text; }
    paragraph(text) { return text; }
    list(body) { return body; }
    listitem(text) { return text; }
    blockquote(quote) { return quote; }
    hr() { return ""; }
    code(code) { return code; }
    table(header, body) { return header + body; }
    tablerow(content) { return content; }
    tablecell(content) { return content + " "; }
}

// The fork joins neighbouring text tokens (an escaped character, a sanitized tag, plain text)
// before its renderer's text() runs doFormatText on them: here, every run of text between two
// tags, outside code, gets the same treatment.
function formatRuns(html, options) {
    let inCode = 0;
    return html.split(/(<[^>]*>)/).map((part) => {
        if (part.startsWith("<")) {
            if (/^<(code|pre)\b/i.test(part)) inCode++;
            if (/^<\/(code|pre)>/i.test(part)) inCode--;
            return part;
        }
        return inCode ? part : formatText(part, options);
    }).join("");
}

function renderMattermost(text, renderer, { autolink = true, mentions = true } = {}) {
    const saved = gfm.url;
    if (!autolink) gfm.url = { exec: () => null };
    try {
        const html = marked(text, { renderer, sanitize: true, gfm: true, tables: true, breaks: false, mangle: false });
        return formatRuns(html.trim(), { mentions });
    } finally {
        gfm.url = saved;
    }
}

// Field titles: {markdown: false}: the web app escapes the HTML and runs doFormatText.
function renderMattermostPlain(text) {
    const html = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/'/g, "&apos;").replace(/"/g, "&quot;");
    return formatText(html, { mentions: false });
}

// --- Discord ----------------------------------------------------------------------------------
// discord-markdown's embed rules (masked links on: webhook messages may use them in content
// too), plus what Discord added since that package: headings, subtext and lists.
const md = discord.markdownEngine;
const atLineStart = (prevSource) => /^$|\n$/.test(prevSource || "");
const discordRules = Object.assign({}, discord.rulesEmbed, {
    heading: {
        order: md.defaultRules.heading.order,
        match: (source, state, prev) => atLineStart(prev) ? /^ *(#{1,3}) +([^\n]+)\n?/.exec(source) : null,
        parse: (capture, parse, state) => ({ level: capture[1].length, content: parse(capture[2].trim(), state) }),
        html: (node, output, state) => discord.htmlTag(`h${node.level}`, output(node.content, state), null, state),
    },
    subtext: {
        order: md.defaultRules.heading.order,
        match: (source, state, prev) => atLineStart(prev) ? /^ *-# +([^\n]+)\n?/.exec(source) : null,
        parse: (capture, parse, state) => ({ content: parse(capture[1].trim(), state) }),
        html: (node, output, state) => discord.htmlTag("small", output(node.content, state), null, state),
    },
    listItem: {
        order: md.defaultRules.heading.order,
        match: (source, state, prev) => atLineStart(prev) ? /^ *(?:[-*]|\d+\.) +([^\n]+)\n?/.exec(source) : null,
        parse: (capture, parse, state) => ({ content: parse(capture[1], state) }),
        html: (node, output, state) => discord.htmlTag("li", output(node.content, state), null, state),
    },
});
const discordParser = md.parserFor(discordRules);
const discordOutput = md.outputFor(discordRules, "html");

function renderDiscord(text) {
    return discord.toHTML(text, { embed: true }, discordParser, discordOutput);
}

// --- the loop ---------------------------------------------------------------------------------
const RENDERERS = {
    teams: (input) => renderTeams(input),
    mattermost: (input) => ({ html: renderMattermost(input, new MattermostRenderer()) }),
    "mattermost-plain": (input) => ({ html: renderMattermostPlain(input) }),
    "mattermost-title": (input) => ({ html: renderMattermost(input, new LinkOnlyRenderer(), { autolink: false, mentions: false }) }),
    discord: (input) => ({ html: renderDiscord(input) }),
};

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
    let answer;
    try {
        const request = JSON.parse(line);
        const render = RENDERERS[request.kind];
        answer = render ? render(request.input) : { error: `unknown kind ${request.kind}` };
    } catch (error) {
        answer = { error: String(error && error.stack ? error.stack : error) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
});
