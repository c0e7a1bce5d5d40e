//! Test support: a tiny terminal that keeps what progress displays draw on it, so tests can
//! check what a redraw leaves on screen.

use std::sync::{Arc, Mutex};

use indicatif::TermLike;

/// A tiny terminal: a grid of lines with a cursor that wraps at the right edge like a real
/// one, enough to see what a redraw leaves on screen.
#[derive(Debug, Clone)]
pub struct Screen(Arc<Mutex<Grid>>);

#[derive(Debug, Default)]
struct Grid {
    rows: Vec<Vec<char>>,
    row: usize,
    column: usize,
}

const WIDTH: usize = 100;

impl Screen {
    /// An empty screen with the cursor at the top left.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Grid::default())))
    }

    /// The visible lines, trailing blanks dropped.
    pub fn lines(&self) -> Vec<String> {
        let grid = self.0.lock().unwrap();
        let mut lines: Vec<String> = grid
            .rows
            .iter()
            .map(|row| row.iter().collect::<String>().trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }

    fn with<R>(&self, change: impl FnOnce(&mut Grid) -> R) -> R {
        change(&mut self.0.lock().unwrap())
    }
}

impl Grid {
    fn put(&mut self, character: char) {
        match character {
            '\r' => self.column = 0,
            '\n' => self.new_line(),
            _ => {
                if self.column == WIDTH {
                    self.new_line();
                }
                while self.rows.len() <= self.row {
                    self.rows.push(Vec::new());
                }
                let row = &mut self.rows[self.row];
                row.resize(row.len().max(self.column + 1), ' ');
                row[self.column] = character;
                self.column += 1;
            }
        }
    }

    fn new_line(&mut self) {
        self.row += 1;
        self.column = 0;
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        WIDTH as u16
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.with(|grid| {
            grid.row = grid.row.saturating_sub(n);
            grid.column = grid.column.min(WIDTH - 1);
        });
        Ok(())
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.with(|grid| {
            grid.row += n;
            grid.column = grid.column.min(WIDTH - 1);
        });
        Ok(())
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.with(|grid| grid.column = (grid.column + n).min(WIDTH - 1));
        Ok(())
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.with(|grid| grid.column = grid.column.saturating_sub(n));
        Ok(())
    }

    fn write_line(&self, text: &str) -> std::io::Result<()> {
        self.with(|grid| text.chars().chain(['\n']).for_each(|character| grid.put(character)));
        Ok(())
    }

    fn write_str(&self, text: &str) -> std::io::Result<()> {
        self.with(|grid| text.chars().for_each(|character| grid.put(character)));
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.with(|grid| {
            if let Some(row) = grid.rows.get_mut(grid.row) {
                row.clear();
            }
            grid.column = 0;
        });
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}
