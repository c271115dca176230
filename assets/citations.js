() => {
  // Page citations in answers are links to "#page-<sha256 prefix>-<page>". A click
  // opens that page in the page viewer instead of following the link.
  document.addEventListener(
    "click",
    (event) => {
      const link = event.target.closest && event.target.closest('a[href*="#page-"]');
      if (!link) return;
      event.preventDefault();
      event.stopPropagation();
      const target = link.getAttribute("href").split("#page-")[1];
      const box = document.querySelector("#cite-target textarea, #cite-target input");
      if (!box) return;
      // Cleared first, so clicking the same citation again is a change too.
      box.value = "";
      box.dispatchEvent(new Event("input", { bubbles: true }));
      setTimeout(() => {
        box.value = target;
        box.dispatchEvent(new Event("input", { bubbles: true }));
      }, 50);
    },
    true,
  );
}
