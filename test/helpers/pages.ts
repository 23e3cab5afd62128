// Reading the dashboard's and console's pages in the browser tests: a table's body as text cells,
// and a downloaded CSV file as rows of cells.
import type { Page } from 'playwright-core';

/** A table's body (`#id tbody`) as text cells, trimmed. */
export function tableRows(page: Page, id: string, options: { plainNumbers?: boolean } = {}): Promise<string[][]> {
  // plainNumbers: 1,234 read as 1234 (the page groups thousands; the model's figures are plain).
  return page.$$eval(
    `#${id} tbody tr`,
    (rows, plain) => rows.map((r) => [...r.children].map((c) => {
      const text = (c.textContent ?? '').trim();
      return plain ? text.replace(/(?<=\d),(?=\d{3})/g, '') : text;
    })),
    options.plainNumbers === true,
  );
}

/** A CSV file as rows of cells (RFC 4180 quoting). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  return rows;
}
