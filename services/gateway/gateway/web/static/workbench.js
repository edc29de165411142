/* 小铺 workbenches (/keeper, /supplier): sections filled from the JSON API (API.md) with the
 * session of app.js (window.xp). Written against the API as it grows: an absent field or a
 * route answering 404 hides what it would feed (keeper_earn_fen → plain commission; no
 * /level → no progress bar; no /refunds queue → refunds read from the orders; no balance →
 * a note), and lights up once the API serves it. */
(function () {
  "use strict";
  var xp = window.xp;
  if (!xp) return;
  var $ = xp.$, $all = xp.$all, api = xp.api;

  /* --- small helpers ----------------------------------------------------------------------- */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "html") node.innerHTML = v; /* only for our own server-made SVG */
      else if (k === "class") node.className = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function fill(box, nodes) { box.innerHTML = ""; nodes.forEach(function (n) { if (n) box.appendChild(n); }); }
  function empty(text) { return el("p", { class: "muted center", text: text }); }
  function yuan(fen) {
    var v = parseInt(fen || 0, 10), sign = v < 0 ? "-" : "";
    v = Math.abs(v);
    return sign + "¥" + Math.floor(v / 100) + "." + ("0" + (v % 100)).slice(-2);
  }
  function pct(bps) { return (Math.round((bps || 0)) / 100).toString().replace(/\.0+$/, "") + "%"; }
  function when(iso) { return iso ? String(iso).slice(0, 16).replace("T", " ") : ""; }
  function set(root, role, text) { var n = $("[data-role=" + role + "]", root); if (n) n.textContent = text; }
  function missing(err) { return err instanceof xp.ApiError && (err.status === 404 || err.status === 405); }
  function failed(box) { return function (err) { fill(box, [el("p", { class: "error", text: xp.explain(err) })]); }; }
  function key(prefix) { return prefix + "-" + xp.newKey(); }
  function badge(root, role, n) {
    var b = $("[data-role=" + role + "]", root);
    if (b) { b.textContent = n; b.hidden = !n; }
  }
  /* the stats' calendar day of an ISO instant (the stats count days at UTC+offset) */
  function dayOf(iso, offsetHours) {
    if (!iso) return "";
    var t = Date.parse(iso);
    if (isNaN(t)) return String(iso).slice(0, 10);
    return new Date(t + offsetHours * 3600e3).toISOString().slice(0, 10);
  }
  function yuanInputs(form) {
    $all("[data-yuan-for]", form).forEach(function (input) {
      input.addEventListener("input", function () {
        var v = parseFloat(input.value || "0");
        form.querySelector("[name=" + input.dataset.yuanFor + "]").value = v > 0 ? Math.round(v * 100) : "";
      });
    });
    $all("[data-pct-for]", form).forEach(function (input) {
      input.addEventListener("input", function () {
        var v = parseFloat(input.value || "0");
        form.querySelector("[name=" + input.dataset.pctFor + "]").value = v >= 0 ? Math.round(v * 100) : "";
      });
    });
  }
  function copy(text, root) {
    function done() { xp.note(root, "已复制"); setTimeout(function () { xp.note(root, ""); }, 2000); }
    function fallback() {
      var t = el("textarea", { readonly: true, style: "position:fixed;top:-1000px" });
      t.value = text; document.body.appendChild(t); t.select();
      try { document.execCommand("copy"); } catch (e) { /* the text stays selectable */ }
      document.body.removeChild(t); done();
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }
  function tabs(root, first) {
    var links = $all("[data-tab]", root);
    function show(name) {
      if (!$("#" + name, root)) name = first;
      links.forEach(function (a) { a.classList.toggle("on", a.dataset.tab === name); });
      $all("section.tab", root).forEach(function (s) { s.hidden = s.id !== name; });
      root.dispatchEvent(new CustomEvent("tab", { detail: name }));
    }
    links.forEach(function (a) {
      a.addEventListener("click", function (ev) { ev.preventDefault(); history.replaceState(null, "", "#" + a.dataset.tab); show(a.dataset.tab); });
    });
    show((location.hash || "").slice(1) || first);
  }
  /* a GET of one of our pages with the cookie; a stale cookie is renewed once */
  function page(path, retried) {
    return fetch(path, { credentials: "same-origin" }).then(function (resp) {
      if (resp.ok) return resp.text();
      if (!retried && xp.session.refreshToken()) return xp.refresh().then(function () { return page(path, true); });
      throw new xp.ApiError(resp.status, null);
    });
  }

  var THREAD_STATUS = { open: "待回复", answered: "已回复", forwarded: "已转供货商", escalated: "已升级平台", closed: "已关闭" };
  var FROM = { buyer: "买家", keeper: "掌柜", supplier: "供货商", platform: "平台" };

  /* --- questions (both benches) ------------------------------------------------------------ */
  function threadCard(t, canForward, reload) {
    var box = el("div", { class: "card thread-card", "data-inquiry-id": t.id, "data-status": t.status });
    var head = el("div", { class: "row" }, [
      el("b", { text: t.title || ("商品 " + (t.product_id || "")) }),
      el("span", { class: "status s-" + t.status, text: THREAD_STATUS[t.status] || t.status })
    ]);
    var meta = el("p", { class: "muted", text: (t.order_id ? "订单 " + t.order_id : "售前咨询") + (t.answer_due_at && t.status === "open" ? " · 请在 " + when(t.answer_due_at) + " 前回复" : "") });
    var msgs = el("div", { "data-role": "messages" }, [el("p", { class: "muted", text: "加载中…" })]);
    var form = el("form", { class: "form", novalidate: true }, [
      el("label", { class: "sr" }, ["回复", el("textarea", { name: "text", rows: "2", maxlength: "5000", placeholder: "写下回复" })]),
      el("p", { class: "error", "data-role": "error", hidden: true }),
      el("div", { class: "row" }, [
        el("button", { type: "submit", class: "secondary grow", "data-action": "reply", text: "回复" }),
        canForward && t.routed_to !== "supplier" ? el("button", { type: "button", class: "ghost", "data-action": "forward", text: "转供货商" }) : null
      ])
    ]);
    if (canForward && t.routed_to !== "supplier") {
      form.insertBefore(el("label", { class: "sr" }, ["转交说明", el("input", { name: "note", type: "text", maxlength: "500", placeholder: "转给供货商时的说明（选填）" })]), $("[data-role=error]", form));
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = form.elements.text.value.trim(), btn = $("[data-action=reply]", form);
      if (!text) { xp.showError(form, "请写下回复"); return; }
      xp.showError(form, ""); xp.busy(btn, true);
      api("POST", "/api/v1/inquiries/" + t.id + "/messages", { text: text }, { key: key("reply") })
        .then(reload, function (err) { xp.busy(btn, false); xp.showError(form, xp.explain(err)); });
    });
    var fwd = $("[data-action=forward]", form);
    if (fwd) fwd.addEventListener("click", function () {
      var note = (form.elements.note && form.elements.note.value.trim()) || undefined;
      xp.showError(form, ""); xp.busy(fwd, true);
      api("POST", "/api/v1/inquiries/" + t.id + "/forward", note ? { note: note } : {}, { key: key("forward") })
        .then(reload, function (err) { xp.busy(fwd, false); xp.showError(form, xp.explain(err)); });
    });
    api("GET", "/api/v1/inquiries/" + t.id).then(function (full) {
      var nodes = (full.messages || []).map(function (m) {
        return el("p", { class: "bubble from-" + m.from_role }, [el("b", { text: (FROM[m.from_role] || m.from_role) + "：" }), m.text, el("span", { class: "muted", text: " " + when(m.created_at) })]);
      });
      var faq = (full.product_facts && full.product_facts.faq) || [];
      if (faq.length) nodes.push(el("details", { class: "faq" }, [el("summary", { text: "商品问答（供货商提供）" })].concat(faq.map(function (f) { return el("p", {}, [el("b", { text: "问：" + f.q }), el("br"), "答：" + f.a]); }))));
      fill(msgs, nodes);
    }, failed(msgs));
    box.appendChild(head); box.appendChild(meta); box.appendChild(msgs);
    if (t.status !== "closed") box.appendChild(form);
    return box;
  }
  function loadQuestions(root, query, canForward) {
    var box = $("[data-role=questions]", root);
    function reload() { loadQuestions(root, query, canForward); }
    return api("GET", "/api/v1/inquiries?" + query).then(function (page) {
      var items = page.items || [];
      badge(root, "questions-badge", items.filter(function (t) { return t.status === "open" || t.status === "escalated" || (t.status === "forwarded" && !canForward); }).length);
      fill(box, items.length ? items.slice(0, 30).map(function (t) { return threadCard(t, canForward, reload); }) : [empty("暂时没有需要回答的问题")]);
    }, failed(box));
  }

  /* --- the keeper's bench ------------------------------------------------------------------ */
  function keeper(root) {
    var shopId = root.dataset.shopId, base = "/api/v1/shops/" + shopId;
    var picked = {}, cursor = null, offset = 8;

    function loadToday() {
      return Promise.all([
        api("GET", base + "/stats"),
        api("GET", base + "/earnings").catch(function () { return null; })
      ]).then(function (got) {
        var stats = got[0], earn = got[1];
        offset = stats.day_utc_offset_hours === undefined ? 8 : stats.day_utc_offset_hours;
        var today = dayOf(new Date().toISOString(), offset);
        var d = (stats.by_day || []).filter(function (x) { return x.day === today; })[0] || {};
        set(root, "today-date", today);
        set(root, "today-visits", d.visits || 0);
        set(root, "today-orders", d.orders || 0);
        set(root, "today-gmv", yuan(d.gmv_fen));
        var t = stats.totals || {};
        set(root, "total-visits", t.visits || 0); set(root, "total-orders", t.orders || 0); set(root, "total-gmv", yuan(t.gmv_fen));
        var est = 0;
        if (earn) (earn.lines || []).forEach(function (l) { if (dayOf(l.paid_at, offset) === today) est += l.net_commission_fen || 0; });
        set(root, "today-commission", earn ? yuan(est) : "–");
        if (earn) money(earn);
        statsTable(stats);
      }).catch(function (err) { set(root, "today-note", xp.explain(err)); });
    }

    function loadLevel() {
      api("GET", base + "/level").then(function (lv) {
        var label = lv.level_label || lv.label || lv.level;
        if (label) set(root, "level-label", label);
        if (lv.bonus_bps !== undefined || lv.level_bonus_bps !== undefined) set(root, "level-bonus", "+" + pct(lv.bonus_bps !== undefined ? lv.bonus_bps : lv.level_bonus_bps));
        var thresholds = lv.thresholds || [];
        var list = $("[data-role=level-thresholds]", root);
        if (thresholds.length) {
          fill(list, thresholds.map(function (th) {
            var need = [];
            var gmv = th.min_sales_fen !== undefined ? th.min_sales_fen : (th.gmv_fen !== undefined ? th.gmv_fen : th.monthly_gmv_fen);
            if (gmv !== undefined) need.push("月结算成交 " + yuan(gmv));
            if (th.orders !== undefined || th.monthly_orders !== undefined) need.push((th.orders !== undefined ? th.orders : th.monthly_orders) + " 单");
            if (th.bonus_bps !== undefined) need.push("加成 +" + pct(th.bonus_bps));
            return el("li", { class: th.level === lv.level ? "on" : "", "data-level": th.level }, [el("b", { text: th.label || th.level_label || th.level }), " " + need.join(" · ")]);
          }));
          list.hidden = false;
        }
        var p = lv.progress || {};
        if (lv.next !== undefined) {  // GET /shops/{id}/level: {month_sales_fen, next:{level, min_sales_fen, remaining_fen}|null}
          p = lv.next
            ? { current_fen: lv.month_sales_fen || 0, target_fen: lv.next.min_sales_fen, next_level: lv.next.level_label || lv.next.level, remaining_fen: lv.next.remaining_fen }
            : { ratio: 1 };
        }
        var ratio = p.ratio !== undefined ? p.ratio : (p.percent !== undefined ? p.percent / 100 : (p.target_fen ? (p.current_fen || 0) / p.target_fen : null));
        if (ratio === null || ratio === undefined) return;
        ratio = Math.max(0, Math.min(1, ratio));
        $("[data-role=level-bar]", root).style.width = Math.round(ratio * 100) + "%";
        var next = p.next_level_label || p.next_level;
        set(root, "level-next", next ? "距「" + next + "」还差 " + (p.remaining_fen !== undefined ? yuan(p.remaining_fen) : Math.round((1 - ratio) * 100) + "%") + (p.remaining_orders ? "、" + p.remaining_orders + " 单" : "") : "已是最高等级");
        $("[data-role=level-progress]", root).hidden = false;
      }, function (err) {
        // the badge and bonus above came with the page; say why the progress is missing
        // (a network or server failure) instead of hiding it without a word
        if (err && err.status === 404) return;  // a gateway without the level route
        set(root, "level-next", "等级进度暂时无法加载：" + xp.explain(err));
        $("[data-role=level-bar]", root).parentNode.hidden = true;
        $("[data-role=level-progress]", root).hidden = false;
      });
    }

    function selectionRow(s) {
      return el("div", { class: "pick-row", "data-product-id": s.product_id }, [
        el("div", { class: "grow" }, [
          el("b", { text: s.title }),
          el("p", { class: "muted", text: yuan(s.price_fen) + (s.available === false ? " · 暂不可售" : "") }),
          s.reason ? el("p", { class: "reason", text: "推荐理由：" + s.reason }) : null
        ]),
        el("button", { type: "button", class: "primary small", "data-action": "share", "data-product-id": s.product_id, "data-title": s.title, text: "分享赚" })
      ]);
    }
    function loadSelections() {
      var box = $("[data-role=selections]", root);
      return api("GET", base).then(function (shop) {
        var sel = shop.selections || [];
        picked = {};
        sel.forEach(function (s) { picked[s.product_id] = s; });
        set(root, "selection-count", sel.length ? sel.length + " 件" : "");
        fill(box, sel.length ? sel.map(selectionRow) : [el("p", { class: "muted" }, ["还没有选品，", el("a", { href: "#catalog", "data-tab-link": "catalog", text: "去选品" })])]);
      }, failed(box));
    }

    function earnLine(p) {
      if (p.keeper_earn_fen !== undefined && p.keeper_earn_fen !== null) return el("span", { class: "earn", "data-role": "earn", "data-earn-fen": p.keeper_earn_fen, text: "你赚 " + yuan(p.keeper_earn_fen) });
      return el("span", { class: "earn", "data-role": "earn", "data-earn-fen": p.commission_fen, text: "你赚 " + yuan(p.commission_fen) }, []);
    }
    function productCard(p) {
      var isPicked = !!picked[p.id];
      var form = el("form", { class: "form pick-form", hidden: true, novalidate: true }, [
        el("label", {}, ["推荐理由（买家会看到）", el("textarea", { name: "reason", rows: "2", maxlength: "5000", placeholder: "例如：我自己回购了三次，茶汤红亮回甘快" })]),
        el("p", { class: "error", "data-role": "error", hidden: true }),
        el("button", { type: "submit", class: "primary", "data-action": "pick", text: "确认选入小铺" })
      ]);
      var action = isPicked
        ? el("button", { type: "button", class: "primary small", "data-action": "share", "data-product-id": p.id, "data-title": p.title, text: "分享赚" })
        : el("button", { type: "button", class: "secondary small", "data-action": "pick-open", text: "选入小铺" });
      var bonusNote = p.keeper_earn_fen === undefined || p.keeper_earn_fen === null
        ? (parseInt(root.dataset.levelBonusBps || "0", 10) ? "（不含等级加成 +" + pct(parseInt(root.dataset.levelBonusBps, 10)) + "）" : "")
        : (p.keeper_earn_fen > p.commission_fen ? "（含等级加成）" : "");
      var card = el("div", { class: "product wb", "data-product-id": p.id }, [
        el("div", { class: "thumb" }, [p.image_url ? el("img", { src: p.image_url, alt: "", loading: "lazy" }) : el("span", { class: "ph", text: (p.title || "品").slice(0, 1) })]),
        el("div", { class: "info" }, [
          el("h3", { text: p.title }),
          el("p", { class: "line" }, [el("span", { class: "price", text: yuan(p.price_fen) }), " ", earnLine(p)]),
          el("p", { class: "muted small-text", text: "佣金 " + pct(p.commission_bps) + bonusNote + (p.sales !== undefined ? " · 已售 " + p.sales : "") + (p.brand ? " · " + p.brand : "") }),
          el("div", { class: "row end" }, [action])
        ])
      ]);
      var wrap = el("div", { class: "product-wrap" }, [card, form]);
      var opener = $("[data-action=pick-open]", card);
      if (opener) opener.addEventListener("click", function () { form.hidden = !form.hidden; if (!form.hidden) form.elements.reason.focus(); });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var btn = $("[data-action=pick]", form), reason = form.elements.reason.value.trim();
        xp.showError(form, ""); xp.busy(btn, true);
        api("PUT", base + "/products/" + p.id, reason ? { reason: reason } : {}, { key: key("pick") })
          .then(function (selection) {
            picked[p.id] = selection || { product_id: p.id };
            form.hidden = true;
            opener.replaceWith(el("button", { type: "button", class: "primary small", "data-action": "share", "data-product-id": p.id, "data-title": p.title, text: "分享赚" }));
            loadSelections();
          }, function (err) { xp.busy(btn, false); xp.showError(form, xp.explain(err)); });
      });
      return wrap;
    }
    function loadCatalog(more) {
      var box = $("[data-role=catalog]", root), form = $("form[data-form=catalog]", root);
      var sort = (form.querySelector("[name=sort]:checked") || {}).value || "commission";
      var q = form.elements.q.value.trim();
      var qs = "sort=" + encodeURIComponent(sort) + "&limit=20" + (q ? "&q=" + encodeURIComponent(q) : "") + (more && cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      var moreBtn = $("[data-action=more-products]", root);
      return api("GET", "/api/v1/products?" + qs).then(function (page) {
        var items = page.items || [];
        if (sort === "commission") { /* stays right if the API ignores ?sort (it did before v1.2) */
          items.sort(function (a, b) {
            var ea = a.keeper_earn_fen !== undefined ? a.keeper_earn_fen : a.commission_fen;
            var eb = b.keeper_earn_fen !== undefined ? b.keeper_earn_fen : b.commission_fen;
            return eb - ea;
          });
        }
        cursor = page.next_cursor;
        moreBtn.hidden = !cursor;
        if (!more) box.innerHTML = "";
        if (!items.length && !more) box.appendChild(empty(q ? "没有找到「" + q + "」相关的商品" : "暂时没有可选的商品"));
        items.forEach(function (p) { box.appendChild(productCard(p)); });
      }, failed(box));
    }

    function openShare(productId, title) {
      var sheet = $("#share-sheet", root);
      set(sheet, "share-title", title || "");
      fill($("[data-role=posters]", sheet), [el("p", { class: "muted", text: "正在生成海报…" })]);
      sheet.hidden = false;
      document.body.classList.add("sheet-open");
      sheet.scrollTop = 0;
      api("POST", "/api/v1/shares", { shop_id: parseInt(shopId, 10), product_id: parseInt(productId, 10) }, { key: key("share") })
        .then(function (s) {
          var names = { card: "卡片海报", full: "大图海报", classic: "经典海报" };
          fill($("[data-role=posters]", sheet), (s.posters || []).map(function (p) {
            return el("figure", { class: "poster", "data-style": p.style }, [
              el("img", { src: p.url, alt: (names[p.style] || p.style) + "：" + (title || ""), "data-role": "poster" }),
              el("figcaption", {}, [names[p.style] || p.style, " · ", el("a", { href: p.url, download: "xiaopu-" + s.code + "-" + p.style, "data-action": "save-poster", text: "保存" })])
            ]);
          }));
          set(sheet, "share-code", s.code);
          sheet.dataset.shareId = s.id;
          sheet.querySelector("[name=copy_text]").value = s.copy_text || "";
          sheet.querySelector("[name=copy_comment]").value = s.copy_comment || "";
          $("[data-role=comment-box]", sheet).hidden = !s.copy_comment; /* short copy: no comment */
          sheet.querySelector("[name=url]").value = s.url || "";
        }, function (err) { fill($("[data-role=posters]", sheet), [el("p", { class: "error", text: xp.explain(err) })]); });
    }

    function statsTable(stats) {
      var rows = (stats.by_share || []).filter(function (s) { return s.share_id; });
      var split = rows.some(function (s) { return s.scans !== undefined; });
      set(root, "kinds-note", split ? "扫码：扫海报二维码；打开链接：点开分享链接；粘贴口令：在小铺首页粘贴口令。" : "访问为合计（扫码、链接、口令暂未分开统计）。");
      var table = $("[data-role=by-share]", root);
      var head = ["口令", "访问"].concat(split ? ["扫码", "链接", "口令"] : []).concat(["订单", "成交额"]);
      fill(table, [el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, rows.map(function (s) {
          var cells = [s.code || "—", s.visits || 0].concat(split ? [s.scans || 0, s.opens || 0, s.pastes || 0] : []).concat([s.orders || 0, yuan(s.gmv_fen)]);
          return el("tr", { "data-share-id": s.share_id }, cells.map(function (c) { return el("td", { text: c }); }));
        }))]);
    }
    function loadCharts() {
      $all("[data-chart]", root).forEach(function (box) {
        page("/keeper/charts/" + box.dataset.chart + ".svg?shop_id=" + shopId + "&t=" + Date.now())
          .then(function (svg) { box.innerHTML = svg; }, function () { fill(box, [el("p", { class: "muted", text: "图表暂时打不开" })]); });
      });
    }

    var HOLD = { refund_open: "退款处理中", suspended: "店铺暂停", manual: "人工审核" };
    var LINE = { pending: "售后期中", settleable: "可提现", settled: "已结算", refunded: "已退款", paid: "已到账" };
    var WD = { requested: "处理中", paid: "已到账", failed: "失败" };
    function money(earn) {
      set(root, "pending", yuan(earn.pending_fen));
      set(root, "settleable", yuan(earn.settleable_fen));
      set(root, "paid", yuan(earn.paid_fen));
      var notes = [];
      if (earn.in_transit_fen) notes.push("提现中 " + yuan(earn.in_transit_fen));
      if (earn.tax_withheld_fen) notes.push("已代扣个税 " + yuan(earn.tax_withheld_fen));
      if (earn.level_bonus_bps) notes.push("等级加成 +" + pct(earn.level_bonus_bps));
      set(root, "money-note", notes.join(" · ") || "买家确认收货且售后期结束后，佣金变为可提现。");
      var lines = earn.lines || [];
      fill($("[data-role=lines]", root), lines.length ? lines.slice(0, 50).map(function (l) {
        var holds = (l.holds || []).map(function (h) { var r = h.reason || h; return HOLD[r] || (String(r).indexOf("fraud") === 0 ? "风控审核" : r); });
        return el("div", { class: "line-row", "data-order-id": l.order_id }, [
          el("div", { class: "grow" }, [el("b", { text: "订单 " + l.order_id }), el("p", { class: "muted", text: when(l.paid_at) + " · 成交 " + yuan(l.paid_fen) + (l.bonus_bps ? " · 含加成 +" + pct(l.bonus_bps) : "") })]),
          el("div", { class: "right" }, [el("b", { text: yuan(l.net_commission_fen) }), el("p", { class: "muted", text: LINE[l.status] || l.status || "" }),
            holds.length ? el("p", { class: "hold", "data-role": "hold", text: "冻结：" + holds.join("、") }) : null])
        ]);
      }) : [empty("还没有佣金，分享后买家下单就有了")]);
    }
    function loadWithdrawals() {
      var box = $("[data-role=withdrawals]", root);
      return api("GET", base + "/withdrawals").then(function (page) {
        var items = page.items || [];
        fill(box, items.length ? items.map(function (w) {
          return el("div", { class: "row line-row", "data-withdrawal-id": w.id }, [
            el("span", { text: when(w.created_at) + (w.account ? " · " + w.account : "") }),
            el("span", {}, [el("b", { text: yuan(w.amount_fen || w.gross_fen) }), " ", el("span", { class: "status s-" + w.status, text: WD[w.status] || w.status })])
          ]);
        }) : [el("p", { class: "muted", text: "还没有提现" })]);
      }, failed(box));
    }
    function loadMoney() {
      api("GET", base + "/earnings").then(money, failed($("[data-role=lines]", root)));
      loadWithdrawals();
    }

    /* wiring */
    root.addEventListener("click", function (ev) {
      var t = ev.target.closest("[data-action], [data-tab-link]");
      if (!t) return;
      if (t.dataset.tabLink) { ev.preventDefault(); $("[data-tab=" + t.dataset.tabLink + "]", root).click(); return; }
      var a = t.dataset.action;
      if (a === "share") openShare(t.dataset.productId, t.dataset.title);
      else if (a === "close") { $("#share-sheet", root).hidden = true; document.body.classList.remove("sheet-open"); }
      else if (a === "copy") { var sheet = $("#share-sheet", root); copy(sheet.querySelector("[name=" + t.dataset.copy + "]").value, sheet); }
      else if (a === "more-products") loadCatalog(true);
      else if (a === "refresh-stats") { loadCharts(); loadToday(); }
      else if (a === "verify") {
        xp.busy(t, true);
        api("POST", base + "/verification", undefined, { key: key("verify") }).then(function () { location.reload(); },
          function (err) { xp.busy(t, false); xp.showError(t.parentNode, xp.explain(err)); });
      } else if (a === "save-payee") {
        var box = t.closest("[data-form=payee]"), form = t.closest("form");
        var body = { channel: box.querySelector("[name=channel]").value, account: box.querySelector("[name=account]").value.trim(), real_name: box.querySelector("[name=real_name]").value.trim() };
        xp.busy(t, true);
        api("PUT", "/api/v1/me/payee", body, { key: key("payee") }).then(function () { xp.busy(t, false); xp.note(form, "收款账户已保存"); xp.showError(form, ""); },
          function (err) { xp.busy(t, false); xp.showError(form, xp.explain(err)); });
      }
    });
    var catalogForm = $("form[data-form=catalog]", root);
    catalogForm.addEventListener("submit", function (ev) { ev.preventDefault(); loadCatalog(false); });
    $all("[name=sort]", catalogForm).forEach(function (r) { r.addEventListener("change", function () { loadCatalog(false); }); });
    var wform = $("form[data-form=withdraw]", root);
    yuanInputs(wform);
    wform.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = $("[data-action=withdraw]", wform), amount = parseInt(wform.elements.amount_fen.value, 10);
      if (!(amount > 0)) { xp.showError(wform, "请输入提现金额"); return; }
      xp.showError(wform, ""); xp.busy(btn, true);
      api("POST", base + "/withdrawals", { amount_fen: amount }, { key: key("withdraw") })
        .then(function () { xp.busy(btn, false); xp.note(wform, "已申请提现"); loadMoney(); },
          function (err) {
            xp.busy(btn, false);
            var msg = xp.explain(err);
            if (err.code && err.code.indexOf("payee") >= 0) { msg = "请先填写收款账户"; $("details.payee", wform).open = true; }
            xp.showError(wform, msg);
          });
    });
    var loaded = {};
    root.addEventListener("tab", function (ev) {
      var name = ev.detail;
      if (name === "stats") { loadCharts(); if (loaded.stats) loadToday(); }
      if (name === "money" && loaded.money) loadMoney();
      if (name === "questions") loadQuestions(root, "as=keeper&limit=50", true);
      loaded[name] = true;
    });
    loadSelections().then(function () { loadCatalog(false); });
    loadToday();
    loadLevel();
    loadWithdrawals();
    tabs(root, "today");
    loadQuestions(root, "as=keeper&limit=50", true);
  }

  /* --- the supplier's bench ---------------------------------------------------------------- */
  function supplier(root) {
    var me = parseInt(root.dataset.supplierId, 10);

    function loadToShip() {
      var form = $("form[data-form=ship]", root), box = $("[data-role=to-ship]", root);
      return api("GET", "/api/v1/orders?status=paid&limit=50").then(function (page) {
        var items = page.items || [];
        set(root, "ship-count", items.length ? items.length + " 单" : "");
        badge(root, "ship-badge", items.length);
        $("[data-action=ship]", form).hidden = !items.length;
        var carrier = $("[data-role=carrier-all]", form).value;
        fill(box, items.length ? items.map(function (o) {
          return el("div", { class: "ship-row", "data-order-id": o.id }, [
            el("label", { class: "check" }, [el("input", { type: "checkbox", name: "order_id", value: o.id, checked: true }), el("b", { text: "订单 " + o.id }), el("span", { class: "muted", text: " " + when(o.paid_at) })]),
            el("p", { class: "items", text: (o.items || []).map(function (i) { return i.title + " × " + i.quantity; }).join("，") + " · " + yuan(o.total_fen) }),
            o.address ? el("p", { class: "muted", text: o.address.name + " " + o.address.phone + " " + o.address.line }) : null,
            el("div", { class: "row" }, [
              el("label", { class: "grow" }, ["快递公司", el("input", { name: "carrier", type: "text", maxlength: "100", list: "carriers", value: carrier })]),
              el("label", { class: "grow" }, ["运单号", el("input", { name: "tracking_no", type: "text", maxlength: "100", autocomplete: "off" })])
            ])
          ]);
        }) : [el("p", { class: "muted", text: "没有待发货的订单" })]);
      }, failed(box));
    }
    function shipSelected(form) {
      var rows = $all(".ship-row", form).filter(function (r) { return r.querySelector("[name=order_id]").checked; });
      if (!rows.length) { xp.showError(form, "请勾选要发货的订单"); return; }
      var bad = rows.filter(function (r) { return !r.querySelector("[name=carrier]").value.trim() || !r.querySelector("[name=tracking_no]").value.trim(); });
      if (bad.length) { xp.showError(form, "请填写快递公司和运单号（订单 " + bad.map(function (r) { return r.dataset.orderId; }).join("、") + "）"); return; }
      var btn = $("[data-action=ship]", form), errors = [], shipped = 0;
      xp.showError(form, ""); xp.busy(btn, true);
      rows.reduce(function (chain, r) {
        return chain.then(function () {
          var id = r.dataset.orderId;
          return api("POST", "/api/v1/orders/" + id + "/ship", { carrier: r.querySelector("[name=carrier]").value.trim(), tracking_no: r.querySelector("[name=tracking_no]").value.trim() }, { key: "ship-" + id })
            .then(function () { shipped += 1; }, function (err) { errors.push("订单 " + id + "：" + xp.explain(err)); });
        });
      }, Promise.resolve()).then(function () {
        xp.busy(btn, false);
        xp.note(form, shipped ? "已发货 " + shipped + " 单" : "");
        xp.showError(form, errors.join("；"));
        loadToShip();
      });
    }

    function refundCard(r, reload) {
      var due = r.decide_by ? Date.parse(r.decide_by) : NaN;
      var left = isNaN(due) ? null : Math.round((due - Date.now()) / 3600e3);
      var box = el("div", { class: "refund-row", "data-refund-id": r.id, "data-order-id": r.order_id }, [
        el("div", { class: "row" }, [el("b", { text: "订单 " + r.order_id + " · 退款 " + yuan(r.amount_fen) }), left !== null ? el("span", { class: "due" + (left < 12 ? " soon" : ""), "data-role": "decide-by", text: left > 0 ? "剩 " + left + " 小时" : "已到期" }) : null]),
        el("p", { text: "原因：" + (r.reason || "") }),
        el("p", { class: "muted", text: "申请于 " + when(r.created_at) + (r.decide_by ? " · 请在 " + when(r.decide_by) + " 前处理" : "") }),
        el("p", { class: "error", "data-role": "error", hidden: true }),
        el("div", { class: "row" }, [
          el("button", { type: "button", class: "ghost grow", "data-action": "reject", text: "拒绝" }),
          el("button", { type: "button", class: "primary grow", "data-action": "approve", text: "同意退款" })
        ])
      ]);
      $all("[data-action=approve], [data-action=reject]", box).forEach(function (btn) {
        btn.addEventListener("click", function () {
          xp.busy(btn, true);
          api("POST", "/api/v1/refunds/" + r.id + "/" + btn.dataset.action, undefined, { key: btn.dataset.action + "-" + r.id })
            .then(reload, function (err) { xp.busy(btn, false); xp.showError(box, xp.explain(err)); });
        });
      });
      return box;
    }
    /* before the refund queue existed: the requested refunds inside the supplier's open orders */
    function refundsFromOrders() {
      return api("GET", "/api/v1/orders?limit=50").then(function (page) {
        var open = (page.items || []).filter(function (o) { return ["paid", "shipped", "received"].indexOf(o.status) >= 0; }).slice(0, 30);
        return Promise.all(open.map(function (o) { return api("GET", "/api/v1/orders/" + o.id).catch(function () { return { refunds: [] }; }); }));
      }).then(function (orders) {
        var out = [];
        orders.forEach(function (o) { (o.refunds || []).forEach(function (r) { if (r.status === "requested") out.push(r); }); });
        return { items: out, fallback: true };
      });
    }
    function loadRefunds() {
      var box = $("[data-role=refunds]", root);
      function reload() { loadRefunds(); loadToShip(); }
      return api("GET", "/api/v1/refunds?status=requested&limit=50").catch(function (err) {
        if (missing(err)) return refundsFromOrders();
        throw err;
      }).then(function (page) {
        var items = (page.items || []).filter(function (r) { return !r.status || r.status === "requested"; });
        items.sort(function (a, b) { return String(a.decide_by || a.created_at).localeCompare(String(b.decide_by || b.created_at)); });
        badge(root, "refunds-badge", items.length);
        set(root, "refund-rule", items.some(function (r) { return r.decide_by; }) ? "请在期限前处理；超时未处理的申请将按平台规则自动处理。" : "买家申请退款后，请尽快同意或拒绝。");
        fill(box, items.length ? items.map(function (r) { return refundCard(r, reload); }) : [el("p", { class: "muted", text: "没有待处理的退款" })]);
      }, failed(box));
    }

    function gallery(p) {
      var imgs = (p.images || []).map(function (i) { return typeof i === "string" ? i : i.url || i.image_url; }).filter(Boolean);
      if (!imgs.length && p.image_url) imgs = [p.image_url];
      return el("div", { class: "gallery", "data-role": "gallery" }, imgs.length ? imgs.map(function (u) { return el("img", { src: u, alt: "", loading: "lazy" }); }) : [el("span", { class: "ph", text: "暂无图片" })]);
    }
    function readFiles(files) {
      return Promise.all(Array.prototype.slice.call(files).map(function (f) {
        return new Promise(function (resolve, reject) {
          var r = new FileReader();
          r.onload = function () { resolve(String(r.result).split(",")[1]); };
          r.onerror = reject;
          r.readAsDataURL(f);
        });
      }));
    }
    function productEditor(p, reload) {
      var faqRows = el("div", { "data-role": "faq" });
      function faqRow(q, a) {
        return el("div", { class: "faq-row" }, [
          el("input", { name: "q", type: "text", maxlength: "500", placeholder: "问题", value: q || "" }),
          el("textarea", { name: "a", rows: "2", maxlength: "2000", placeholder: "回答" }, [a || ""])
        ]);
      }
      (p.faq && p.faq.length ? p.faq : [{}]).forEach(function (f) { faqRows.appendChild(faqRow(f.q, f.a)); });
      var specsText = Object.keys(p.specs || {}).map(function (k) { return k + "：" + p.specs[k]; }).join("\n");
      var box = el("details", { class: "card form product-edit", "data-product-id": p.id }, [
        el("summary", {}, [
          el("div", { class: "thumb" }, [p.image_url ? el("img", { src: p.image_url, alt: "" }) : el("span", { class: "ph", text: (p.title || "品").slice(0, 1) })]),
          el("div", { class: "grow" }, [el("b", { text: p.title }), el("p", { class: "muted", text: yuan(p.price_fen) + " · 库存 " + p.stock + " · 佣金 " + pct(p.commission_bps) + (p.status !== "listed" ? " · 已下架" : "") })])
        ]),
        el("h3", { text: "价格与库存" }),
        el("div", { class: "row" }, [
          el("label", { class: "grow" }, ["售价（元）", el("input", { "data-yuan-for": "price_fen", type: "number", step: "0.01", min: "0.01", value: (p.price_fen / 100).toFixed(2) })]),
          el("label", { class: "grow" }, ["库存", el("input", { name: "stock", type: "number", min: "0", step: "1", value: p.stock })])
        ]),
        el("input", { type: "hidden", name: "price_fen", value: p.price_fen }),
        el("button", { type: "button", class: "secondary", "data-action": "save-product", text: "保存价格和库存" }),
        el("h3", { text: "图片" }),
        gallery(p),
        el("label", {}, ["添加图片（可多选）", el("input", { name: "images", type: "file", accept: "image/*", multiple: true })]),
        el("button", { type: "button", class: "secondary", "data-action": "upload-images", text: "上传图片" }),
        el("h3", { text: "常见问题、规格与售后" }),
        faqRows,
        el("button", { type: "button", class: "link", "data-action": "add-faq", text: "＋ 再加一条问答" }),
        el("label", {}, ["规格（每行一项，如“净含量：250g”）", el("textarea", { name: "specs", rows: "3", maxlength: "4000" }, [specsText])]),
        el("label", {}, ["售后政策", el("textarea", { name: "after_sales_policy", rows: "2", maxlength: "2000" }, [p.after_sales_policy || ""])]),
        el("button", { type: "button", class: "secondary", "data-action": "save-faq", text: "保存问答、规格与售后" }),
        el("p", { class: "error", "data-role": "error", hidden: true }),
        el("p", { class: "note", "data-role": "note", hidden: true }),
        el("div", { class: "row" }, [p.status === "listed"
          ? el("button", { type: "button", class: "link", "data-action": "delist", text: "下架" })
          : el("button", { type: "button", class: "link", "data-action": "relist", text: "重新上架" })])
      ]);
      yuanInputs(box);
      /* a saved edit stays open with its note; a change of photos or listing redraws the list */
      function done(msg, redraw) {
        return function (saved) {
          $all("[data-action]", box).forEach(function (b) { xp.busy(b, false); });
          xp.note(box, msg); xp.showError(box, "");
          if (saved && saved.price_fen !== undefined) {
            $("summary p", box).textContent = yuan(saved.price_fen) + " · 库存 " + saved.stock + " · 佣金 " + pct(saved.commission_bps) + (saved.status !== "listed" ? " · 已下架" : "");
          }
          if (redraw) reload();
        };
      }
      function oops(btn) { return function (err) { xp.busy(btn, false); xp.showError(box, xp.explain(err)); }; }
      box.addEventListener("click", function (ev) {
        var btn = ev.target.closest("[data-action]");
        if (!btn || !box.contains(btn)) return;
        var a = btn.dataset.action, path = "/api/v1/products/" + p.id;
        if (a === "add-faq") { faqRows.appendChild(faqRow()); return; }
        xp.busy(btn, true);
        if (a === "save-product") {
          api("PATCH", path, { price_fen: parseInt(box.querySelector("[name=price_fen]").value, 10), stock: parseInt(box.querySelector("[name=stock]").value, 10) }, { key: key("product") })
            .then(done("已保存"), oops(btn));
        } else if (a === "save-faq") {
          var faq = $all(".faq-row", box).map(function (r) { return { q: r.querySelector("[name=q]").value.trim(), a: r.querySelector("[name=a]").value.trim() }; }).filter(function (f) { return f.q && f.a; });
          var specs = {};
          box.querySelector("[name=specs]").value.split("\n").forEach(function (line) {
            var m = line.match(/^\s*([^:：]+)[:：]\s*(.+?)\s*$/);
            if (m) specs[m[1].trim()] = m[2];
          });
          var body = { faq: faq, specs: specs };
          var policy = box.querySelector("[name=after_sales_policy]").value.trim();
          if (policy) body.after_sales_policy = policy;
          api("PUT", path + "/faq", body, { key: key("faq") }).then(done("已保存"), oops(btn));
        } else if (a === "upload-images") {
          var files = box.querySelector("[name=images]").files;
          if (!files.length) { xp.busy(btn, false); xp.showError(box, "请选择图片"); return; }
          readFiles(files).then(function (b64) {
            return api("PUT", path + "/images", { images: b64.map(function (d) { return { image_base64: d }; }) }, { key: key("images") })
              .catch(function (err) { /* one photo per product before the gallery route */
                if (missing(err)) return api("PATCH", path, { image_base64: b64[0] }, { key: key("image") });
                throw err;
              });
          }).then(done("图片已上传", true), oops(btn));
        } else if (a === "delist" || a === "relist") {
          api("POST", path + "/" + a, undefined, { key: key(a) }).then(done(a === "delist" ? "已下架" : "已上架", true), oops(btn));
        }
      });
      return box;
    }
    /* the supplier's products: ?supplier_id= narrows the list where the API supports it; the
     * items are filtered here too, so an API that ignores it still shows only ours */
    function loadProducts() {
      var box = $("[data-role=products]", root), mine = [];
      function reload() { loadProducts(); }
      function pageAt(cursor, n) {
        return api("GET", "/api/v1/products?supplier_id=" + me + "&limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "")).then(function (page) {
          (page.items || []).forEach(function (p) { if (p.supplier_id === me) mine.push(p); });
          if (page.next_cursor && n < 5) return pageAt(page.next_cursor, n + 1);
        });
      }
      return pageAt(null, 1).then(function () {
        fill(box, mine.length ? mine.map(function (p) { return productEditor(p, reload); }) : [empty("还没有在售商品")]);
      }, failed(box));
    }

    function loadBalance() {
      api("GET", "/api/v1/suppliers/" + me + "/balance").then(function (b) {
        set(root, "pending", yuan(b.pending_fen)); set(root, "settleable", yuan(b.settleable_fen)); set(root, "paid", yuan(b.paid_fen));
        set(root, "balance-note", "货款在买家确认收货且售后期结束后结算。");
        var st = $("[data-role=statements]", root);
        st.hidden = false;
        var month = st.querySelector("[name=month]");
        if (!month.value) month.value = new Date().toISOString().slice(0, 7);
        fill($("[data-role=balance-lines]", root), (b.lines || []).slice(0, 30).map(function (l) {
          return el("div", { class: "row line-row" }, [el("span", { text: (l.order_id ? "订单 " + l.order_id : l.kind || "") + " " + when(l.paid_at || l.posted_at) }), el("b", { text: yuan(l.amount_fen !== undefined ? l.amount_fen : l.net_fen) })]);
        }));
      }, function (err) {
        set(root, "balance-note", missing(err) ? "账款明细即将开放；结算按售后期结束后的订单进行。" : xp.explain(err));
      });
    }
    function downloadStatement(btn) {
      var st = $("[data-role=statements]", root), month = st.querySelector("[name=month]").value;
      if (!/^\d{4}-\d{2}$/.test(month)) { xp.showError(st, "请选择月份"); return; }
      xp.busy(btn, true);
      fetch("/api/v1/suppliers/" + me + "/statements/" + month + ".csv", { headers: { Authorization: "Bearer " + xp.session.token() } })
        .then(function (resp) { if (!resp.ok) throw new xp.ApiError(resp.status, null); return resp.blob(); })
        .then(function (blob) {
          var a = el("a", { href: URL.createObjectURL(blob), download: "statement-" + month + ".csv" });
          document.body.appendChild(a); a.click(); a.remove(); xp.busy(btn, false); xp.showError(st, "");
        }, function (err) { xp.busy(btn, false); xp.showError(st, xp.explain(err)); });
    }

    var shipForm = $("form[data-form=ship]", root);
    shipForm.addEventListener("submit", function (ev) { ev.preventDefault(); shipSelected(shipForm); });
    $("[data-role=carrier-all]", shipForm).addEventListener("input", function (ev) {
      $all(".ship-row", shipForm).forEach(function (r) {
        if (r.querySelector("[name=order_id]").checked) r.querySelector("[name=carrier]").value = ev.target.value;
      });
    });
    var np = $("[data-form=new-product]", root);
    yuanInputs(np);
    $("[data-action=create-product]", np).addEventListener("click", function (ev) {
      var btn = ev.currentTarget, f = function (n) { return np.querySelector("[name=" + n + "]").value.trim(); };
      var body = { title: f("title"), category: f("category"), price_fen: parseInt(f("price_fen"), 10), stock: parseInt(f("stock") || "0", 10),
        commission_bps: parseInt(f("commission_bps"), 10), market_commission_bps: parseInt(f("commission_bps"), 10),
        reference_price_fen: parseInt(f("reference_price_fen") || f("price_fen"), 10) };
      if (f("brand")) body.brand = f("brand");
      if (f("description")) body.description = f("description");
      if (!body.title || !(body.price_fen > 0) || !(body.commission_bps >= 0)) { xp.showError(np, "请填写标题、售价和佣金"); return; }
      xp.busy(btn, true);
      api("POST", "/api/v1/products", body, { key: key("product") }).then(function () { xp.busy(btn, false); np.open = false; loadProducts(); },
        function (err) { xp.busy(btn, false); xp.showError(np, xp.explain(err)); });
    });
    root.addEventListener("click", function (ev) {
      var t = ev.target.closest("[data-action=statement]");
      if (t) downloadStatement(t);
    });
    root.addEventListener("tab", function (ev) {
      if (ev.detail === "products" && !root.dataset.productsLoaded) { root.dataset.productsLoaded = "1"; loadProducts(); }
    });
    loadToShip();
    loadRefunds();
    loadQuestions(root, "limit=50", false);
    loadBalance();
    tabs(root, "ship");
  }

  /* --- no shop yet: open one --------------------------------------------------------------- */
  function openShop(form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = $("[data-action=open-shop]", form), name = form.elements.name.value.trim();
      if (!name) { xp.showError(form, "请填写店铺名称"); return; }
      var body = { name: name };
      if (form.elements.description.value.trim()) body.description = form.elements.description.value.trim();
      xp.busy(btn, true);
      api("POST", "/api/v1/shops", body, { key: key("shop") })
        .then(function (shop) { return api("POST", "/api/v1/shops/" + shop.id + "/verification", undefined, { key: "verify-" + shop.id }).catch(function () { return shop; }); })
        .then(function () { location.reload(); }, function (err) { xp.busy(btn, false); xp.showError(form, xp.explain(err)); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var k = $("#keeper"), s = $("#supplier"), o = $("form[data-form=open-shop]");
    if (k) keeper(k);
    if (s) supplier(s);
    if (o) openShop(o);
  });
})();
