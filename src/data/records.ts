/** The records every loader yields, before ids are interned into a Dataset. */

/** One interaction as read from a file. `line` is its line in `file`, kept for error messages. */
export interface RawInteraction {
  user: string;
  item: string;
  timestamp: number;
  rating?: number;
}

/** One catalogue entry. `title` may be empty: cleaning decides what happens to untitled items. */
export interface RawItem {
  item: string;
  title: string;
}

/** Column names of an interactions table. `rating` is optional: absent means the file has no ratings. */
export interface InteractionColumns {
  user: string;
  item: string;
  timestamp: string;
  rating?: string;
}

/** Column names of an items table. */
export interface ItemColumns {
  item: string;
  title: string;
}

export const DEFAULT_INTERACTION_COLUMNS: InteractionColumns = {
  user: 'user_id',
  item: 'item_id',
  timestamp: 'timestamp',
  rating: 'rating',
};

export const DEFAULT_ITEM_COLUMNS: ItemColumns = { item: 'item_id', title: 'title' };
