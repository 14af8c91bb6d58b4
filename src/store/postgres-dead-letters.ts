import type { PostgresConnection } from "./postgres-connection.ts";
import { toDeadLetter } from "./rows.ts";
import type { Store } from "./store.ts";

/** The dead letters on PostgreSQL, for the admin API: a page by id, some by id, and deleting them. */
export type PostgresDeadLetters = Pick<Store, "listDeadLetters" | "getDeadLetters" | "deleteDeadLetters">;

export function createPostgresDeadLetters({ run, query }: PostgresConnection): PostgresDeadLetters {
  return {
    listDeadLetters({ limit, afterId }) {
      return run("list dead letters", async () => {
        const { rows } = await query("cartbridge_list_dead_letters", LIST_DEAD_LETTERS, [
          afterId ?? 0,
          limit,
        ]);
        return rows.map(toDeadLetter);
      });
    },

    getDeadLetters(ids) {
      if (ids.length === 0) return Promise.resolve([]);
      return run("get dead letters", async () => {
        const { rows } = await query("cartbridge_get_dead_letters", GET_DEAD_LETTERS, [[...ids]]);
        const byId = new Map(rows.map((row) => [Number(row["id"]), toDeadLetter(row)]));
        return ids.flatMap((id) => byId.get(id) ?? []);
      });
    },

    async deleteDeadLetters(ids) {
      if (ids.length === 0) return;
      await run("delete dead letters", () =>
        query("cartbridge_delete_dead_letters", DELETE_DEAD_LETTERS, [[...ids]]),
      );
    },
  };
}

const LIST_DEAD_LETTERS = "SELECT * FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2";
const GET_DEAD_LETTERS = "SELECT * FROM dead_letters WHERE id = ANY($1::bigint[])";
const DELETE_DEAD_LETTERS = "DELETE FROM dead_letters WHERE id = ANY($1::bigint[])";
