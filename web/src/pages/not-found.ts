import { h } from "../dom.js";
import type { PageContext } from "../router.js";
import { heading } from "../ui.js";

export function notFoundPage(ctx: PageContext): void {
  document.title = "Not found · Cadenza";
  ctx.main.append(h("section", {}, heading("Nothing here"), h("p", {}, "This address does not lead to a page of the studio. ", h("a", { href: "/" }, "Go to your songs"), ".")));
}
