// OrderedMap: insertion-ordered map with constant-time lookup (JSON objects, a module's tensors and
// children), so that n insertions cost O(n), not O(n^2).
#pragma once

#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <nlohmann/ordered_map.hpp>

namespace sparsity {

/// nlohmann::ordered_map (insertion order, as torch's dicts) with a hash index once an object holds more
/// than a few keys, so that building or parsing an object of n keys costs O(n), not O(n^2). The index is
/// kept up to date by every mutation (const lookups never write, so a shared Json can be read from
/// several threads).
template <class Key, class T, class IgnoredLess = std::less<Key>,
          class Allocator = std::allocator<std::pair<const Key, T>>>
struct IndexedOrderedMap : nlohmann::ordered_map<Key, T, IgnoredLess, Allocator> {
  using Base = nlohmann::ordered_map<Key, T, IgnoredLess, Allocator>;
  using typename Base::const_iterator;
  using typename Base::iterator;
  using typename Base::key_type;
  using typename Base::size_type;
  using typename Base::value_type;

  /// Objects up to this size are searched linearly (faster than hashing, and no index memory).
  static constexpr size_type kLinear = 16;

  IndexedOrderedMap() = default;
  explicit IndexedOrderedMap(const Allocator& alloc) : Base(alloc) {}
  template <class It>
  IndexedOrderedMap(It first, It last, const Allocator& alloc = Allocator()) : Base(alloc) {
    insert(first, last);
  }
  IndexedOrderedMap(std::initializer_list<value_type> init, const Allocator& alloc = Allocator())
      : Base(alloc) {
    for (const auto& v : init) insert(v);
  }

  template <class K>
  iterator find(const K& key) {
    return this->begin() + static_cast<std::ptrdiff_t>(position(key));
  }
  template <class K>
  const_iterator find(const K& key) const {
    return this->begin() + static_cast<std::ptrdiff_t>(position(key));
  }
  template <class K>
  size_type count(const K& key) const {
    return position(key) == this->size() ? 0 : 1;
  }
  template <class K>
  T& at(const K& key) {
    const size_type i = position(key);
    if (i == this->size()) throw std::out_of_range("key not found");
    return item(i).second;
  }
  template <class K>
  const T& at(const K& key) const {
    const size_type i = position(key);
    if (i == this->size()) throw std::out_of_range("key not found");
    return item(i).second;
  }
  template <class K>
  T& operator[](K&& key) {
    return emplace(key_type(std::forward<K>(key)), T{}).first->second;
  }
  template <class K>
  const T& operator[](const K& key) const {
    return at(key);
  }

  template <class K, class V>
  std::pair<iterator, bool> emplace(K&& key, V&& value) {
    const size_type i = position(key);
    if (i != this->size()) return {this->begin() + static_cast<std::ptrdiff_t>(i), false};
    this->Container::emplace_back(key_type(std::forward<K>(key)), T(std::forward<V>(value)));
    note_appended();
    return {std::prev(this->end()), true};
  }
  std::pair<iterator, bool> insert(value_type&& value) { return emplace(value.first, std::move(value.second)); }
  std::pair<iterator, bool> insert(const value_type& value) {
    T copy = value.second;
    return emplace(value.first, std::move(copy));
  }
  template <class InputIt, class = typename std::iterator_traits<InputIt>::iterator_category>
  void insert(InputIt first, InputIt last) {
    for (; first != last; ++first) insert(*first);
  }

  template <class K, class = std::enable_if_t<!std::is_same_v<std::decay_t<K>, iterator> &&
                                              !std::is_same_v<std::decay_t<K>, const_iterator>>>
  size_type erase(const K& key) {
    const size_type i = position(key);
    if (i == this->size()) return 0;
    Base::erase(this->begin() + static_cast<std::ptrdiff_t>(i));
    rebuild();
    return 1;
  }
  iterator erase(iterator pos) {
    const auto i = pos - this->begin();
    Base::erase(pos);
    rebuild();
    return this->begin() + i;
  }
  iterator erase(iterator first, iterator last) {
    const auto i = first - this->begin();
    Base::erase(first, last);
    rebuild();
    return this->begin() + i;
  }
  void clear() noexcept {
    Base::clear();
    index_.reset();
  }

 private:
  using Container = typename Base::Container;

  // Position of `key`, size() when absent.
  template <class K>
  size_type position(const K& key) const {
    if (index_) {
      const auto it = index_->find(key_type(key));
      return it == index_->end() ? this->size() : it->second;
    }
    for (size_type i = 0; i < this->size(); ++i) {
      if (item(i).first == key) return i;
    }
    return this->size();
  }
  void note_appended() {
    if (index_) {
      index_->emplace(this->back().first, this->size() - 1);
    } else if (this->size() > kLinear) {
      rebuild();
    }
  }
  void rebuild() {
    if (this->size() <= kLinear) {
      index_.reset();
      return;
    }
    index_.emplace();
    index_->reserve(this->size());
    for (size_type i = 0; i < this->size(); ++i) index_->emplace(item(i).first, i);
  }

  value_type& item(size_type i) { return *(this->begin() + static_cast<std::ptrdiff_t>(i)); }
  const value_type& item(size_type i) const { return *(this->begin() + static_cast<std::ptrdiff_t>(i)); }

  std::optional<std::unordered_map<key_type, size_type>> index_;  ///< key -> position; copied with the map
};


/// Insertion-ordered map of unique keys (iteration in insertion order, like torch's OrderedDict) whose
/// lookups are O(1): `map.find(key)`, `map.emplace(key, value)`, `for (auto& [k, v] : map)`.
template <class K, class V>
using OrderedMap = IndexedOrderedMap<K, V>;

}  // namespace sparsity
