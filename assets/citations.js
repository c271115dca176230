() => {
  // A link to "#<marker><value>" that must not be followed: its value goes to the
  // hidden textbox `box`, whose change event the server answers. Cleared first, so
  // clicking the same link again is a change too.
  const routeLinks = (links, marker, box) =>
    document.addEventListener(
      "click",
      (event) => {
        const link = event.target.closest && event.target.closest(links);
        if (!link) return;
        event.preventDefault();
        event.stopPropagation();
        const target = link.getAttribute("href").split(marker)[1];
        const input = document.querySelector(`${box} textarea, ${box} input`);
        if (!input) return;
        input.value = "";
        input.dispatchEvent(new Event("input", { bubbles: true }));
        setTimeout(() => {
          input.value = target;
          input.dispatchEvent(new Event("input", { bubbles: true }));
        }, 50);
      },
      true,
    );

  // Page citations in answers are links to "#page-<sha256 prefix>-<page>": a click
  // opens that page in the page viewer.
  routeLinks('a[href*="#page-"]', "#page-", "#cite-target");
  // A version switcher's ‹ › are links to "#version-<message id>": a click shows that
  // version's branch (app/history.py version_switcher).
  routeLinks('#chat a[href^="#version-"]', "#version-", "#version-target");

  // An attachment chip's × removes that file from the input: the input's own remove
  // button for the same file (chips and thumbnails are in the same order).
  document.addEventListener(
    "click",
    (event) => {
      const remove = event.target.closest && event.target.closest("#attachment-chips .chip-remove");
      if (!remove) return;
      event.preventDefault();
      const buttons = document.querySelectorAll("#input .thumbnail-wrapper .delete-button");
      const button = buttons[Number(remove.dataset.index)];
      if (button) button.click();
    },
    true,
  );

  // A question's versions come as an empty mark at the top of its answer (app/render.py
  // question_versions_mark): drawn here as ‹ 2/3 › in the question's own bubble.
  const versionStep = (target, arrow, name) => {
    const step = document.createElement(target ? "a" : "span");
    step.textContent = arrow;
    if (target) {
      step.href = `#version-${target}`;
      step.title = `${name} version`;
    } else {
      step.className = "version-end";
    }
    return step;
  };
  // Idempotent: a switcher already showing what its mark says stays as it is (no
  // churn under a reader's click while the chat streams or re-renders).
  const placeQuestionVersions = (chat) => {
    const rows = [...chat.querySelectorAll(".message-row")];
    const wanted = new Map(); // the question's bubble -> its mark's class names
    chat.querySelectorAll(".bot-row .question-versions").forEach((mark) => {
      const question = rows[rows.indexOf(mark.closest(".message-row")) - 1];
      const bubble = question && question.classList.contains("user-row") && question.querySelector(".user.message");
      if (bubble) wanted.set(bubble, mark.className);
    });
    chat.querySelectorAll(".placed-versions").forEach((placed) => {
      if (wanted.get(placed.parentElement) !== placed.dataset.mark) placed.remove();
    });
    wanted.forEach((mark, bubble) => {
      if (bubble.querySelector(":scope > .placed-versions")) return; // already right
      const fact = (pattern) => mark.split(" ").map((name) => name.match(pattern)).find(Boolean);
      const at = fact(/^qv-(\d+)-of-(\d+)$/);
      if (!at) return;
      const previous = fact(/^qv-previous-(\d+)$/);
      const next = fact(/^qv-next-(\d+)$/);
      const switcher = document.createElement("span");
      switcher.className = "versions placed-versions";
      switcher.dataset.mark = mark;
      switcher.title = "versions of this question";
      switcher.append(
        versionStep(previous && previous[1], "‹", "previous"),
        ` ${at[1]}/${at[2]} `,
        versionStep(next && next[1], "›", "next"),
      );
      bubble.appendChild(switcher);
    });
  };
  const watchChat = setInterval(() => {
    const chat = document.querySelector("#chat");
    if (!chat) return;
    clearInterval(watchChat);
    let pending = false;
    const observer = new MutationObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        observer.disconnect(); // our own changes are not news
        placeQuestionVersions(chat);
        observer.observe(chat, { childList: true, subtree: true, characterData: true });
      });
    });
    observer.observe(chat, { childList: true, subtree: true, characterData: true });
  }, 200);

  // Esc closes the page viewer if it is open, otherwise stops what runs (the Stop
  // buttons are on the page only while something runs).
  const shown = (selector) => {
    const element = document.querySelector(selector);
    return element && element.offsetParent !== null ? element : null;
  };
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (event.target.closest && event.target.closest('[role="combobox"]')) return; // closes a list
    const button = shown("#page-close") || shown("#stop") || shown("#compare-stop");
    if (button) {
      event.preventDefault();
      button.click();
    }
  });

  // On a narrow screen the chat comes first: the saved chats and the settings start
  // folded (the layout itself is in style.css).
  if (window.matchMedia("(max-width: 768px)").matches) {
    const drawers = ["#chats-drawer", "#settings-drawer"];
    let tries = 0;
    const fold = setInterval(() => {
      const labels = drawers.map((id) => document.querySelector(`${id} > button.label-wrap`));
      if (labels.every((label) => label)) {
        labels.forEach((label) => label.classList.contains("open") && label.click());
        clearInterval(fold);
      } else if (++tries > 100) {
        clearInterval(fold);
      }
    }, 100);
  }
}
